"""Shared test set-up: no network, ever; paths to the bundled fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# bench/mutation.py runs the property tests with --hypothesis-profile=mutation: no shrinking (a failing
# example is enough to kill a mutant, and shrinking it can take longer than the mutant's time limit)
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], derandomize=True,
                          database=None)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
