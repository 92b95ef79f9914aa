"""Reference values from PyTorch (float64) for src/text/bert.ts: a small BERT-style encoder with weights that
both sides generate from a seed, so no weights are stored.

Run with Debian's python3 (python3-torch): /usr/bin/python3 scripts/gen_bert_fixture.py
Writes fixtures/torch/bert_encoder.json. Deterministic.

Weights: parameter i (in the order listed in the fixture, graft's names and layouts) holds
lo + (hi - lo) * u_k rounded to float32, where u_k are successive draws of mulberry32(seed * 1000 + i), the
generator of src/rng.ts (rng). The model is bench/torch_bert.py's Bert (Hugging Face's BERT layout)
with those weights, in float64, dropout off. Saved: the loss (mean cross-entropy), the logits, and for every
parameter its gradient: in full when it has at most FULL elements, else its L2 norm and its projections on
PROJ vectors of uniform [-1, 1) draws from mulberry32(seed * 1000 + 500 + i).
"""
import json
import math
import pathlib
import sys

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
from fixture_rng import f32, mulberry32  # noqa: E402
from torch_bert import Bert, _pairs, graft_grads, load_graft  # noqa: E402

torch.set_default_dtype(torch.float64)
FULL = 1100
PROJ = 8




def spec(name, shape):
    """The range each parameter is drawn from: wide enough that attention is far from uniform."""
    if name.startswith("embeddings.") and not name.startswith("embeddings.ln"):
        return -1.0, 1.0
    if name.endswith("ln.weight"):
        return 0.8, 1.2
    if name.endswith(".bias"):
        return -0.1, 0.1
    a = math.sqrt(3.0 / shape[0])  # [in, out]: unit-variance preserving
    return -a, a


def draw_param(seed, lo, hi, n):
    r = mulberry32(seed)
    return [f32(lo + (hi - lo) * r()) for _ in range(n)]


def case(name, cfg, seed, ids, types, labels):
    model = Bert(cfg)
    shapes = {}
    for gname, t, kind in _pairs(model):
        if kind == "same":
            shapes[gname] = list(t.shape)
        elif kind == "linear":
            shapes[gname] = list(t.shape)[::-1]
        elif kind == "qkv":
            shapes[gname] = [t[0].shape[1], 3 * t[0].shape[0]]
        else:
            shapes[gname] = [3 * t[0].shape[0]]
    params, specs = {}, []
    for i, (gname, shape) in enumerate(shapes.items()):
        lo, hi = spec(gname, shape)
        n = math.prod(shape)
        params[gname] = torch.tensor(draw_param(seed * 1000 + i, lo, hi, n)).reshape(shape)
        specs.append({"name": gname, "shape": shape, "seed": seed * 1000 + i, "lo": lo, "hi": hi})
    load_graft(model, params)
    model.eval()
    L = cfg["seqLen"]
    ids_t = torch.tensor([s + [0] * (L - len(s)) for s in ids])
    mask = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in ids])
    types_t = torch.tensor([s + [0] * (L - len(s)) for s in types]) if types else None
    logits = model(ids_t, mask, types_t)
    loss = F.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    grads = graft_grads(model)
    out = {}
    for i, (gname, shape) in enumerate(shapes.items()):
        g = grads[gname].reshape(-1)
        n = g.numel()
        if n <= FULL:
            out[gname] = {"full": [float(f"{v:.12g}") for v in g.tolist()]}
        else:
            r = mulberry32(seed * 1000 + 500 + i)
            proj = []
            for _ in range(PROJ):
                vec = torch.tensor([2 * r() - 1 for _ in range(n)])
                proj.append(float(g @ vec))
            out[gname] = {"norm": float(g.norm()), "proj": proj}
    return {
        "name": name, "config": cfg, "seed": seed, "params": specs,
        "ids": ids, "types": types, "labels": labels,
        "loss": float(loss), "logits": [float(v) for v in logits.reshape(-1).tolist()], "grads": out,
    }


base = dict(vocabSize=100, hidden=32, layers=2, heads=4, intermediate=64, seqLen=16, classes=3,
            dropout=0.0, attentionDropout=0.0, layerNormEps=1e-12)
ids = [
    [2, 17, 45, 9, 88, 23, 61, 5, 77, 30, 12, 99, 41, 8, 66, 3],
    [2, 51, 14, 70, 33, 9, 84, 26, 47, 3, 58],
    [2, 90, 11, 39, 3],
]
types = [[0] * 8 + [1] * 8, [0] * 6 + [1] * 5, [0, 0, 0, 1, 1]]
labels = [0, 2, 1]
fixture = {
    "cases": [
        case("cls_pooler_erf", {**base, "pooling": "cls", "pooler": True, "gelu": "erf"}, 1, ids, None, labels),
        case("mean_tanh_segments", {**base, "pooling": "mean", "pooler": False, "gelu": "tanh", "segments": True}, 2, ids, types, labels),
    ],
}
path = ROOT / "fixtures" / "torch" / "bert_encoder.json"
path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
print(f"wrote {path} ({path.stat().st_size} bytes)")
