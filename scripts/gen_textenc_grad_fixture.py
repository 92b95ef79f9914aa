"""Reference gradients from PyTorch (float64) for src/text/encoder-net.ts: the tiny BERT of fixtures/textenc/tiny-bert
replayed as a trainable network, with a new linear head, for a padded batch with token type ids.

Run with Debian's python3 (python3-torch, python3-onnx): /usr/bin/python3 scripts/gen_textenc_grad_fixture.py
Writes fixtures/torch/textenc_grads.json. Deterministic. Does not touch fixtures/textenc.

- The module is TinyBert from scripts/gen_textenc_fixture.py (imported, not copied). Its weights are read from the
  exported fixtures/textenc/tiny-bert/onnx/model.onnx, so the reference does not depend on torch's RNG reproducing
  the export (the script reports whether torch.manual_seed(0) still does). Each torch parameter is matched to the
  ONNX name graft gives it: an initializer of the same name, the output of an Identity node the exporter tied
  it through (graft unties those LayerNorm copies under that name), or, for a Linear weight, the one MatMul
  initializer equal to its transpose ([in, out], e.g. 'onnx::MatMul_292'); every match is checked by value.
- The LayerNorm scales and shifts are all 1 and 0 in the export (so the exporter tied them); the fixture replaces
  them with seeded values ("overrides", float32) so that each LayerNorm's own parameter is exercised. The head
  ('head.weight' [H, K], 'head.bias' [K]) is drawn per case and stored too. All other weights are the export's.
- Cases: sequence classification with 'cls' and 'mean' pooling (mean over the attention mask, count clamped to 1),
  and token classification (head on every hidden state, cross-entropy averaged over labelled tokens, ignore_index
  -100 for special tokens and padding). Loss, logits (flat, token-major) and the gradient of every parameter.
- The attention bias is (1 - mask) * finfo(float64).min here and finfo(float32).min in the export: masked keys get
  exactly zero attention weight in both.
- Gradients, under graft's names and layouts: in full up to FULL elements; the word and position embeddings as
  their nonzero rows (every other row's gradient is exactly zero); larger ones as their L2 norm and projections
  on PROJ vectors of uniform [-1, 1) draws from mulberry32(proj seed), the rng() of src/rng.ts.
- The key biases (layers.*.k.bias) have a zero gradient (softmax is invariant to the q.b_k that every score of a
  row gains): here float64 round-off (~1e-17), so the test checks graft's against the other gradients' scale.
- "init": per parameter, the sum and sum of squares of its exported value, so the test can check that graft's
  parameter of that name holds the weight the reference used.
"""
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "textenc" / "tiny-bert"
OUT = ROOT / "fixtures" / "torch" / "textenc_grads.json"
FULL = 1100
PROJ = 8
SEQ_LEN = 12

sys.path.insert(0, str(ROOT / "scripts"))
from fixture_rng import f32, mulberry32  # noqa: E402

_spec = importlib.util.spec_from_file_location("gen_textenc_fixture", ROOT / "scripts" / "gen_textenc_fixture.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)




def num(v):
    return float(f"{v:.8g}")


# ---- the exported weights, under graft's names ------------------------------------------------------------------

def onnx_weights():
    m = onnx.load(str(MODEL / "onnx" / "model.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Identity" and n.input[0] in inits}
    scopes = {n.name: n.input[1] for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    return inits, alias, sorted(set(scopes.values())), scopes


def name_map(net, inits, alias, matmul):
    """torch parameter name -> (graft name, transposed), checked by value against the export."""
    out = {}
    used = set()
    for name, p in net.named_parameters():
        w = p.detach().double().numpy()
        if name in inits or name in alias:
            g = name
            v = inits[name] if name in inits else inits[alias[name]]
            transposed = False
        else:
            hits = [k for k in matmul if inits[k].shape == w.T.shape and np.array_equal(inits[k].astype(np.float64), w.T)]
            assert len(hits) == 1, f"{name}: {len(hits)} MatMul initializers equal its transpose"
            g, v, transposed = hits[0], inits[hits[0]], True
        assert np.array_equal(v.astype(np.float64), w.T if transposed else w), f"{name} differs from the export's {g}"
        assert g not in used, g
        used.add(g)
        out[name] = (g, transposed)
    return out


def load_export(vocab_rows, inits, alias, scopes):
    """TinyBert with the export's weights (float64). A Linear weight [out, in] is the transpose of the initializer
    [in, out] its MatMul node reads; the node is named after the module's scope (/layers.0/q/MatMul)."""
    net = base.TinyBert(vocab_rows).double().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in inits or name in alias:
                v = inits[name] if name in inits else inits[alias[name]]
            else:
                parts = name.rsplit(".", 1)[0].split(".")  # layers.0.q
                v = inits[scopes["/" + "/".join([f"{parts[0]}.{parts[1]}", *parts[2:]]) + "/MatMul"]].T
            p.copy_(torch.from_numpy(v.astype(np.float64)))
    return net


# ---- the batch ----------------------------------------------------------------------------------------------------

def vocab():
    return json.loads((MODEL / "tokenizer.json").read_text())["model"]["vocab"]


def pair(a, b, voc):
    """[CLS] a [SEP] b [SEP] with token types 0 for the first part, 1 for the second (the tokenizer's pair template)."""
    ea, eb = base.encode(a, voc), base.encode(b, voc)[1:]
    return ea + eb, [0] * len(ea) + [1] * len(eb)


def batch(voc):
    seqs = [
        pair("click here to receive your free gift", "offer ends today, reply now", voc),  # cut to SEQ_LEN: no padding
        pair("your free offer", "reply now", voc),  # 8 tokens, 3 of type 1, then padding
        (base.encode("hello world", voc), None),  # 7 tokens, types 0
    ]
    ids, types = [], []
    for s, t in seqs:
        s = s[:SEQ_LEN]
        ids.append(s)
        types.append((t or [0] * len(s))[:SEQ_LEN])
    return ids, types


def padded(rows, fill=0):
    return torch.tensor([r + [fill] * (SEQ_LEN - len(r)) for r in rows])


# ---- gradients ----------------------------------------------------------------------------------------------------

def seeded(gen, shape, mean, std):
    v = torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean
    return torch.tensor([f32(x) for x in v.reshape(-1).tolist()], dtype=torch.float64).reshape(shape)


def grad_ref(g, kind, seed):
    if kind == "rows":
        rows = [i for i in range(g.shape[0]) if bool((g[i] != 0).any())]
        return {"rows": rows, "values": [num(v) for v in g[rows].reshape(-1).tolist()]}
    flat = g.reshape(-1)
    if flat.numel() <= FULL:
        return {"full": [num(v) for v in flat.tolist()]}
    r = mulberry32(seed)
    proj = []
    for _ in range(PROJ):
        vec = torch.tensor([2 * r() - 1 for _ in range(flat.numel())], dtype=torch.float64)
        proj.append(num(float(flat @ vec)))
    return {"norm": num(float(flat.norm())), "proj": proj, "seed": seed}


def case(idx, name, task, pooling, classes, net, names, ids, types, labels, hidden):
    gen = torch.Generator().manual_seed(100 + idx)
    hw = seeded(gen, (hidden, classes), 0.0, 0.5)
    hb = seeded(gen, (classes,), 0.0, 0.1)
    W = hw.clone().requires_grad_(True)
    b = hb.clone().requires_grad_(True)
    net.zero_grad()
    mask = padded([[1] * len(s) for s in ids])
    h = net(padded(ids), mask, padded(types))  # [B, L, H]
    if task == "token":
        logits = h @ W + b  # [B, L, K]
        y = padded(labels, -100)
        loss = F.cross_entropy(logits.reshape(-1, classes), y.reshape(-1), ignore_index=-100)
    else:
        if pooling == "cls":
            pooled = h[:, 0]
        else:
            m = mask.to(h.dtype)
            pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        logits = pooled @ W + b
        loss = F.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    grads = {}
    for tname, p in net.named_parameters():
        g, transposed = names[tname]
        grads[g] = p.grad.T if transposed else p.grad
    grads["head.weight"] = W.grad
    grads["head.bias"] = b.grad
    out = {}
    for i, (g, v) in enumerate(grads.items()):
        kind = "rows" if g in ("word.weight", "position.weight") else "auto"
        out[g] = grad_ref(v.detach(), kind, idx * 1000 + 500 + i)
    return {
        "name": name, "task": task, "pooling": pooling, "classes": classes, "labels": labels,
        "head": {"head.weight": hw.reshape(-1).tolist(), "head.bias": hb.tolist()},
        "loss": float(loss), "logits": [num(v) for v in logits.detach().reshape(-1).tolist()], "grads": out,
    }


def main():
    inits, alias, matmul, scopes = onnx_weights()
    vocab_rows, hidden = inits["word.weight"].shape
    net = load_export(vocab_rows, inits, alias, scopes)
    names = name_map(net, inits, alias, matmul)
    # Informative: does torch's RNG still reproduce the export (gen_textenc_fixture.py seeds 0, then builds TinyBert)?
    torch.manual_seed(0)
    fresh = dict(base.TinyBert(vocab_rows).named_parameters())
    same = all(torch.equal(fresh[n].double(), p) for n, p in net.named_parameters())
    print(f"torch.manual_seed(0) reproduces the exported weights: {'yes' if same else 'no'} (the reference reads them from the ONNX file)")
    torch.set_default_dtype(torch.float64)

    # LayerNorm overrides, then the initial values the test checks graft's parameters against.
    gen = torch.Generator().manual_seed(7)
    overrides = {}
    with torch.no_grad():
        for mname, mod in net.named_modules():
            if isinstance(mod, nn.LayerNorm):
                for pn, mean, std in (("weight", 1.0, 0.2), ("bias", 0.0, 0.1)):
                    v = seeded(gen, tuple(getattr(mod, pn).shape), mean, std)
                    getattr(mod, pn).copy_(v)
                    overrides[f"{mname}.{pn}"] = v.tolist()
    init = {}
    for tname, (g, _) in names.items():
        v = inits[g] if g in inits else inits[alias[g]]
        v = v.astype(np.float64).reshape(-1)
        init[g] = {"shape": list(inits[g].shape if g in inits else inits[alias[g]].shape), "sum": float(v.sum()), "sumsq": float((v * v).sum())}

    voc = vocab()
    ids, types = batch(voc)
    K_SEQ, K_TOK = 3, 5
    special = {voc["[CLS]"], voc["[SEP]"]}
    tok_labels = [[-100 if t in special else (t * 7 + j) % K_TOK for j, t in enumerate(s)] for s in ids]
    cases = [
        case(0, "sequence_cls", "sequence", "cls", K_SEQ, net, names, ids, types, [0, 2, 1], hidden),
        case(1, "sequence_mean", "sequence", "mean", K_SEQ, net, names, ids, types, [2, 1, 0], hidden),
        case(2, "token", "token", None, K_TOK, net, names, ids, types, tok_labels, hidden),
    ]
    OUT.write_text(json.dumps({"seqLen": SEQ_LEN, "ids": ids, "types": types, "overrides": overrides, "init": init, "cases": cases}) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes); lengths {[len(s) for s in ids]}, losses {[round(c['loss'], 6) for c in cases]}")


if __name__ == "__main__":
    main()
