"""Sequence classifiers for issue 17 item 4: an LSTM and a GRU (batch first, last hidden state -> Linear),
exported by PyTorch to ONNX (opset 14), with PyTorch's float64 loss, logits and gradients of every parameter
after one forward/backward, the gradients rearranged into the ONNX layout (gate order i, o, f, c for the
LSTM and z, r, h for the GRU; the two biases concatenated) so that the test can match them to the ONNX
initializers by shape.

    /usr/bin/python3 scripts/gen_rnn_fixtures.py        # Debian's python3 (torch 1.13)

Writes fixtures/torch/rnn/{lstm,gru}.onnx and .json. Deterministic.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "torch" / "rnn"
N, T, I, H, C = 3, 5, 4, 6, 3
LABELS = [0, 2, 1]


class Classifier(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(I, H, batch_first=True)
        self.head = nn.Linear(H, C)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :])


def onnx_gates(t, kind):
    # PyTorch's gate blocks (LSTM i, f, g, o; GRU r, z, n) in ONNX's order (LSTM i, o, f, c; GRU z, r, h).
    blocks = list(t.reshape(4 if kind == "lstm" else 3, H, *t.shape[1:]))
    order = [0, 3, 1, 2] if kind == "lstm" else [1, 0, 2]
    return torch.cat([blocks[k] for k in order], 0)


r = lambda t: [round(float(v), 12) for v in t.detach().reshape(-1).tolist()]
OUT.mkdir(parents=True, exist_ok=True)
for kind in ["lstm", "gru"]:
    torch.manual_seed(0 if kind == "lstm" else 1)
    m = Classifier(kind).double()
    x = torch.randn(N, T, I, dtype=torch.float64)
    y = torch.tensor(LABELS)
    logits = m(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    g = {k: p.grad for k, p in m.named_parameters()}
    grads = {
        "W": onnx_gates(g["rnn.weight_ih_l0"], kind).unsqueeze(0),
        "R": onnx_gates(g["rnn.weight_hh_l0"], kind).unsqueeze(0),
        "B": torch.cat([onnx_gates(g["rnn.bias_ih_l0"], kind), onnx_gates(g["rnn.bias_hh_l0"], kind)]).unsqueeze(0),
        "head.weight": g["head.weight"],
        "head.bias": g["head.bias"],
    }
    f32 = Classifier(kind)
    f32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
    torch.onnx.export(f32, x.float(), str(OUT / f"{kind}.onnx"), input_names=["x"], output_names=["logits"], opset_version=14)
    json.dump({
        "kind": kind, "dims": [N, T, I, H, C], "x": r(x), "labels": LABELS, "loss": float(loss), "logits": r(logits),
        "grads": {k: {"shape": list(v.shape), "values": r(v)} for k, v in grads.items()},
    }, open(OUT / f"{kind}.json", "w"), indent=0)
    print(kind, float(loss))
