"""Where bundled files live: the editable ``rules/`` folder and the bundled fixtures."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def rules_dir() -> Path:
    """The rules folder users edit: $PROVAUDIT_RULES, the repository's ``rules/``, or the installed copy."""
    env = os.environ.get("PROVAUDIT_RULES")
    candidates = [Path(env)] if env else []
    candidates += [_PKG.parent / "rules", Path(sys.prefix) / "share" / "provaudit" / "rules"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError("no rules folder found; set PROVAUDIT_RULES to your rules/ directory")


def cache_root() -> Path:
    """provaudit's cache of derived files (the de-quantized language model, the word-frequency table):
    ``$PROVAUDIT_CACHE``, else ``~/.cache/provaudit``. Everything in it can be rebuilt from installed
    packages, offline; a missing or read-only cache only costs time."""
    env = os.environ.get("PROVAUDIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "provaudit"


def write_cache_file(path: Path, write: Callable[[str], object]) -> bool:
    """Put a file into the cache atomically: ``write(tmp)`` fills a temporary file beside ``path``, which is
    then renamed over it, so a reader (another process too) sees the old file or the whole new one. False, with
    nothing left behind, where the cache cannot be written (read-only, not a folder): a cache only saves time."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # only there when the rename did not happen


def default_gate() -> Path:
    return rules_dir() / "gate.yaml"
