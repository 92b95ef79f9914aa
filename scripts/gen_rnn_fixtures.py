"""Sequence classifiers for issue 17 item 4: an LSTM and a GRU (batch first, last hidden state -> Linear),
exported by PyTorch to ONNX (opset 14), with PyTorch's float64 loss, logits and gradients of every parameter
after one forward/backward, the gradients rearranged into the ONNX layout (gate order i, o, f, c for the
LSTM and z, r, h for the GRU; the two biases concatenated) so that the test can match them to the ONNX
initializers by shape.

    /usr/bin/python3 scripts/gen_rnn_fixtures.py        # Debian's python3 (torch 1.13)

Writes fixtures/torch/rnn/{lstm,gru}.onnx and .json, and the sequence backbones seq_{lstm,gru} (below). Deterministic.
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


def onnx_gates(t, kind, h=H):
    # PyTorch's gate blocks (LSTM i, f, g, o; GRU r, z, n) in ONNX's order (LSTM i, o, f, c; GRU z, r, h).
    blocks = list(t.reshape(4 if kind == "lstm" else 3, h, *t.shape[1:]))
    order = [0, 3, 1, 2] if kind == "lstm" else [1, 0, 2]
    return torch.cat([blocks[k] for k in order], 0)


r = lambda t: [round(float(v), 12) for v in t.detach().reshape(-1).tolist()]


def write_classifiers():
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


# Sequence backbones, for the backbone path (load, layer groups, Learner fine-tune): an input projection
# (Linear + ReLU), two stacked recurrent layers as separate modules, and the mean over time as the features.
# Exported without a head and with a dynamic batch, as a downloaded encoder would be; graft appends its own
# linear head, whose weights the fixture gives. Weights start in float32 so the float64 reference sees the
# exact values the ONNX file holds. Gradients are in the ONNX layout (the projection's MatMul weight is W^T),
# with each parameter's value too, so the test finds its initializer by value rather than by an exporter's name.
BN, BT, BF, BH, BC = 4, 8, 8, 16, 10
BLABELS = [3, 0, 7, 9]


class SeqBackbone(nn.Module):
    def __init__(self, kind):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.proj = nn.Linear(BF, BH)
        self.rnn1 = rnn(BH, BH, batch_first=True)
        self.rnn2 = rnn(BH, BH, batch_first=True)

    def forward(self, x):
        h = torch.relu(self.proj(x))
        h, _ = self.rnn1(h)
        h, _ = self.rnn2(h)
        return h.mean(1)


def onnx_layout(name, t, kind):
    if name == "proj.weight":
        return t.t()
    return onnx_gates(t, kind, BH) if ".weight_" in name or ".bias_" in name else t


def write_backbones():
    for kind in ["lstm", "gru"]:
        torch.manual_seed(10 if kind == "lstm" else 11)
        f32 = SeqBackbone(kind).eval()
        m = SeqBackbone(kind).double()
        m.load_state_dict({k: v.double() for k, v in f32.state_dict().items()})
        x = torch.randn(BN, BT, BF).double()
        hw = (torch.randn(BH, BC) * 0.3).float().double().requires_grad_()
        hb = (torch.randn(BC) * 0.1).float().double().requires_grad_()
        feats = m(x)
        logits = feats @ hw + hb
        loss = F.cross_entropy(logits, torch.tensor(BLABELS))
        names = [k for k, _ in m.named_parameters()]
        grads = torch.autograd.grad(loss, [p for _, p in m.named_parameters()] + [hw, hb])
        params = {}
        for k, p, g in zip(names, [p for _, p in m.named_parameters()], grads):
            # The LSTM/GRU biases: ONNX concatenates bias_ih and bias_hh into one B; kept apart here and joined below.
            params[k] = {"value": onnx_layout(k, p.detach(), kind), "grad": onnx_layout(k, g, kind)}
        for layer in ["rnn1", "rnn2"]:
            ih, hh = params.pop(f"{layer}.bias_ih_l0"), params.pop(f"{layer}.bias_hh_l0")
            params[f"{layer}.B"] = {"value": torch.cat([ih["value"], hh["value"]]).unsqueeze(0), "grad": torch.cat([ih["grad"], hh["grad"]]).unsqueeze(0)}
            for w in ["weight_ih_l0", "weight_hh_l0"]:
                params[f"{layer}.{w}"] = {k: v.unsqueeze(0) for k, v in params[f"{layer}.{w}"].items()}
        path = OUT / f"seq_{kind}.onnx"
        torch.onnx.export(f32, x.float(), str(path), input_names=["x"], output_names=["features"], opset_version=14,
                          dynamic_axes={"x": {0: "N"}, "features": {0: "N"}})
        json.dump({
            "kind": kind, "dims": [BN, BT, BF, BH, BC], "x": r(x), "labels": BLABELS, "loss": float(loss), "logits": r(logits),
            "head": {"weight": r(hw), "bias": r(hb)}, "head_grads": {"weight": r(grads[-2]), "bias": r(grads[-1])},
            "params": {k: {"shape": list(v["value"].shape), "value": r(v["value"]), "grad": r(v["grad"])} for k, v in params.items()},
        }, open(OUT / f"seq_{kind}.json", "w"), indent=0)
        print(f"seq_{kind}", float(loss))


if __name__ == "__main__":
    write_classifiers()
    write_backbones()
