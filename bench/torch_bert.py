"""PyTorch side of bench/bert.ts, and the reference model for scripts/gen_bert_fixture.py.

`Bert` is the encoder of src/text/bert.ts written the way Hugging Face's BertForSequenceClassification is
(separate query/key/value Linears, scores / sqrt(d) + (1 - mask) * -10000, post-LN, GELU, pooler, classifier).
`load_graft` maps graft's parameters (weights stored [in, out], Q/K/V fused as [hidden, 3 * hidden]) onto it
and `graft_grads` maps the gradients back.

Usage: python3 bench/torch_bert.py THREADS [STEPS] [DROPOUT]. Times one fine-tuning step (forward, backward,
AdamW) of a 4-layer, 256-wide encoder (4 heads, intermediate 1024, vocab 30522, batch 16, length 128) and
prints one JSON line.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class Layer(nn.Module):
    def __init__(self, H, heads, inter, eps, p, pa, gelu):
        super().__init__()
        self.heads, self.gelu = heads, gelu
        self.query, self.key, self.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.attn_out, self.attn_ln = nn.Linear(H, H), nn.LayerNorm(H, eps=eps)
        self.ffn_in, self.ffn_out, self.ffn_ln = nn.Linear(H, inter), nn.Linear(inter, H), nn.LayerNorm(H, eps=eps)
        self.drop, self.attn_drop = nn.Dropout(p), nn.Dropout(pa)

    def forward(self, h, bias):
        B, L, H = h.shape
        dh = H // self.heads
        split = lambda t: t.view(B, L, self.heads, dh).transpose(1, 2)
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
        ctx = (self.attn_drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(B, L, H)
        h = self.attn_ln(h + self.drop(self.attn_out(ctx)))
        f = self.ffn_out(F.gelu(self.ffn_in(h), approximate="none" if self.gelu == "erf" else "tanh"))
        return self.ffn_ln(h + self.drop(f))


class Bert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, self.cfg = cfg["hidden"], cfg
        eps = cfg.get("layerNormEps", 1e-12)
        self.word = nn.Embedding(cfg["vocabSize"], H)
        self.position = nn.Embedding(cfg.get("maxPositions", cfg["seqLen"]), H)
        self.token_type = nn.Embedding(cfg.get("typeVocabSize", 2), H)
        self.emb_ln = nn.LayerNorm(H, eps=eps)
        p, pa = cfg.get("dropout", 0.1), cfg.get("attentionDropout", 0.1)
        self.drop = nn.Dropout(p)
        self.layers = nn.ModuleList(
            [Layer(H, cfg["heads"], cfg["intermediate"], eps, p, pa, cfg.get("gelu", "erf")) for _ in range(cfg["layers"])])
        self.pooling = cfg.get("pooling", "cls")
        self.pooler = nn.Linear(H, H) if cfg.get("pooler", self.pooling == "cls") else None
        self.classifier = nn.Linear(H, cfg["classes"])

    def forward(self, ids, mask, types=None):
        L = ids.shape[1]
        types = torch.zeros_like(ids) if types is None else types
        pos = torch.arange(L, device=ids.device)
        h = self.drop(self.emb_ln(self.word(ids) + self.position(pos) + self.token_type(types)))
        bias = (1.0 - mask.to(h.dtype))[:, None, None, :] * -10000.0
        for layer in self.layers:
            h = layer(h, bias)
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = mask.to(h.dtype)
            pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(pooled))
        return self.classifier(self.drop(pooled))


def _pairs(model):
    """(graft name, torch parameter(s), kind): kind 'same', 'linear' (graft [in, out] = W.T) or 'qkv'."""
    out = [("embeddings.word", model.word.weight, "same"), ("embeddings.position", model.position.weight, "same"),
           ("embeddings.token_type", model.token_type.weight, "same"),
           ("embeddings.ln.weight", model.emb_ln.weight, "same"), ("embeddings.ln.bias", model.emb_ln.bias, "same")]
    for i, l in enumerate(model.layers):
        n = f"layer{i}"
        out += [(f"{n}.attn.qkv.weight", (l.query.weight, l.key.weight, l.value.weight), "qkv"),
                (f"{n}.attn.qkv.bias", (l.query.bias, l.key.bias, l.value.bias), "qkv_bias")]
        for g, m in (("attn.out", l.attn_out), ("ffn.in", l.ffn_in), ("ffn.out", l.ffn_out)):
            out += [(f"{n}.{g}.weight", m.weight, "linear"), (f"{n}.{g}.bias", m.bias, "same")]
        for g, m in (("attn.ln", l.attn_ln), ("ffn.ln", l.ffn_ln)):
            out += [(f"{n}.{g}.weight", m.weight, "same"), (f"{n}.{g}.bias", m.bias, "same")]
    if model.pooler is not None:
        out += [("pooler.weight", model.pooler.weight, "linear"), ("pooler.bias", model.pooler.bias, "same")]
    out += [("classifier.weight", model.classifier.weight, "linear"), ("classifier.bias", model.classifier.bias, "same")]
    return out


@torch.no_grad()
def load_graft(model, params):
    """params: graft name -> tensor in graft's layout."""
    for name, t, kind in _pairs(model):
        w = params[name]
        if kind == "same":
            t.copy_(w)
        elif kind == "linear":
            t.copy_(w.T)
        elif kind == "qkv":
            for j, part in enumerate(t):
                part.copy_(w[:, j * part.shape[0]:(j + 1) * part.shape[0]].T)
        else:
            for j, part in enumerate(t):
                part.copy_(w[j * part.shape[0]:(j + 1) * part.shape[0]])


def graft_grads(model):
    """Gradients in graft's names and layouts."""
    out = {}
    for name, t, kind in _pairs(model):
        if kind == "same":
            out[name] = t.grad
        elif kind == "linear":
            out[name] = t.grad.T
        elif kind == "qkv":
            out[name] = torch.cat([p.grad.T for p in t], dim=1)
        else:
            out[name] = torch.cat([p.grad for p in t])
    return out


def bench(threads, steps, dropout):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = dict(vocabSize=30522, hidden=256, layers=4, heads=4, intermediate=1024, seqLen=128, maxPositions=512, classes=2,
               dropout=dropout, attentionDropout=dropout)
    B, L = 16, 128
    model = Bert(cfg)
    model.train()
    ids = torch.randint(1, cfg["vocabSize"], (B, L))
    lengths = [L - (i * 7) % 64 for i in range(B)]  # the same padding pattern as bench/bert.ts
    mask = torch.tensor([[1 if t < n else 0 for t in range(L)] for n in lengths])
    ids = ids * mask
    y = torch.tensor([i % 2 for i in range(B)])
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids, mask), y).backward()
        opt.step()

    for _ in range(2):
        step()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    dropout = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    s, cpu = bench(threads, steps, dropout)
    print(json.dumps({"torch": torch.__version__, "threads": threads, "dropout": dropout, "step_ms": s * 1000, "cpu_ms": cpu * 1000}))
