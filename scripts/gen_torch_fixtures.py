"""Reference gradients from PyTorch (float64) for graft's conv, pooling and BatchNorm rules, and for two small
composite networks. ONNX Runtime 1.30's CPU provider has no float64 Conv, ConvTranspose, AveragePool,
GlobalAveragePool or GlobalMaxPool kernel (MaxPool and BatchNormalization have one), so those rules cannot be
checked by float64 finite differences inside graft.

Run with Debian's python3 (python3-torch): /usr/bin/python3 scripts/gen_torch_fixtures.py
Writes fixtures/torch/nn_op_<case>.json, nn_mlp.json and nn_cnn_block.json. Deterministic: each case is
seeded from its own name, so rerunning (or adding a case) reproduces the same files.

Op cases hold ONNX-style attrs, the inputs in ONNX input order, a random projection R, the output y and
the gradients of sum(y * R) with respect to the inputs named in "wrt".
"""
import json
import pathlib
import zlib

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "torch"


def rnd(t):
    """Rounds to 10 significant digits; the rounded values are the ones computed with."""
    return torch.tensor([float(f"{v:.10g}") for v in t.reshape(-1).tolist()]).reshape(t.shape)


def flat(t):
    return [float(f"{v:.10g}") for v in t.detach().reshape(-1).tolist()]


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def write(name, obj):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def torch_pad(x, pads):
    """ONNX pads [b0, b1, .., e0, e1, ..] as an explicit F.pad (torch's padding= is symmetric only)."""
    r = len(pads) // 2
    spec = []
    for i in reversed(range(r)):
        spec += [pads[i], pads[i + r]]
    return F.pad(x, spec)


def op_case(name, op, attrs, inputs, wrt, fn):
    """inputs: list of (name, tensor); fn maps the input dict to the output."""
    xs = {n: rnd(t).requires_grad_(n in wrt) for n, t in inputs}
    y = fn(xs)
    R = rnd(torch.rand(y.shape) * 2 - 1)
    (y * R).sum().backward()
    write(f"nn_op_{name}", {
        "op": op, "attrs": attrs,
        "inputs": [{"name": n, "shape": list(xs[n].shape), "values": flat(xs[n])} for n, _ in inputs],
        "wrt": wrt, "y_shape": list(y.shape), "y": flat(y), "R": flat(R),
        "grads": {n: flat(xs[n].grad) for n in wrt},
    })


def conv(name, xs, ws, stride=1, pads=None, dilation=1, groups=1, bias=False):
    seed(name)
    r = len(xs) - 2
    pads = pads or [0] * (2 * r)
    attrs = {"strides": [stride] * r, "pads": pads, "dilations": [dilation] * r, "group": groups}
    inputs = [("x", torch.randn(xs)), ("w", torch.randn(ws) * 0.5)] + ([("b", torch.randn(ws[0]))] if bias else [])
    fconv = F.conv1d if r == 1 else F.conv2d
    op_case(name, "Conv", attrs, inputs, [n for n, _ in inputs],
            lambda t: fconv(torch_pad(t["x"], pads), t["w"], t.get("b"), stride=stride, dilation=dilation, groups=groups))


def conv_transpose(name, xs, ws, stride, pad, out_pad, dilation=1, groups=1):
    seed(name)
    attrs = {"strides": [stride] * 2, "pads": [pad] * 4, "dilations": [dilation] * 2, "group": groups,
             "output_padding": [out_pad] * 2}
    inputs = [("x", torch.randn(xs)), ("w", torch.randn(ws) * 0.5), ("b", torch.randn(ws[1] * groups))]
    op_case(name, "ConvTranspose", attrs, inputs, ["x", "w", "b"],
            lambda t: F.conv_transpose2d(t["x"], t["w"], t["b"], stride=stride, padding=pad, output_padding=out_pad,
                                         groups=groups, dilation=dilation))


def distinct(shape):
    """Values without ties (spacing 4/n), so the max of every window is unambiguous."""
    n = torch.Size(shape).numel()
    return (torch.randperm(n).double() / n * 4 - 2).reshape(shape)


# ---- ops ----
conv("conv3x3_s1_p1", [2, 3, 5, 5], [4, 3, 3, 3], pads=[1, 1, 1, 1])
conv("conv3x3_s2_p1", [2, 3, 6, 7], [4, 3, 3, 3], stride=2, pads=[1, 1, 1, 1])  # H=6 needs output_padding
conv("conv3x3_dil2", [2, 3, 7, 7], [4, 3, 3, 3], pads=[1, 1, 1, 1], dilation=2)
conv("conv_group2", [2, 4, 5, 5], [6, 2, 3, 3], pads=[1, 1, 1, 1], groups=2)
conv("conv_depthwise", [2, 4, 6, 6], [4, 1, 3, 3], pads=[1, 1, 1, 1], groups=4)
conv("conv_depthwise_s2_mult2", [2, 3, 6, 6], [6, 1, 3, 3], stride=2, pads=[1, 1, 1, 1], groups=3)
conv("conv1x1", [2, 5, 4, 4], [3, 5, 1, 1])
conv("conv_bias_asym_pads", [2, 3, 5, 5], [4, 3, 3, 3], stride=2, pads=[0, 1, 1, 0], bias=True)
conv("conv1d_s2", [2, 3, 9], [4, 3, 3], stride=2, pads=[1, 1], bias=True)
conv_transpose("convT_s2_outpad1", [2, 4, 4, 4], [4, 3, 3, 3], stride=2, pad=1, out_pad=1)
conv_transpose("convT_group2_dil2", [2, 4, 3, 3], [4, 2, 3, 3], stride=2, pad=1, out_pad=1, dilation=2, groups=2)

for include in (0, 1):
    name = f"avgpool3x3_s2_p1_incl{include}"
    seed(name)
    op_case(name, "AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": include},
            [("x", torch.randn(2, 3, 6, 7))], ["x"],
            lambda t: F.avg_pool2d(t["x"], 3, 2, 1, count_include_pad=bool(include)))

seed("maxpool2x2_s2")
op_case("maxpool2x2_s2", "MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]},
        [("x", distinct([2, 3, 6, 6]))], ["x"], lambda t: F.max_pool2d(t["x"], 2, 2))
seed("maxpool3x3_s2_p1")
op_case("maxpool3x3_s2_p1", "MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        [("x", distinct([2, 3, 7, 7]))], ["x"], lambda t: F.max_pool2d(t["x"], 3, 2, 1))

seed("batchnorm_eval")
op_case("batchnorm_eval", "BatchNormalization", {"epsilon": 1e-3},
        [("x", torch.randn(2, 3, 4, 4)), ("scale", torch.randn(3)), ("B", torch.randn(3)),
         ("mean", torch.randn(3) * 0.5), ("var", torch.rand(3) + 0.5)], ["x", "scale", "B"],
        lambda t: F.batch_norm(t["x"], t["mean"], t["var"], t["scale"], t["B"], training=False, eps=1e-3))

seed("global_avgpool")
op_case("global_avgpool", "GlobalAveragePool", {}, [("x", torch.randn(2, 3, 5, 4))], ["x"],
        lambda t: t["x"].mean((2, 3), keepdim=True))


# ---- composites: loss and every parameter gradient ----
def composite(name, x, labels, params, forward):
    x = rnd(x)
    ps = {k: rnd(v).requires_grad_(not k.startswith("buf.")) for k, v in params.items()}
    loss = F.cross_entropy(forward(x, ps), labels)
    loss.backward()
    write(name, {
        "x": {"shape": list(x.shape), "values": flat(x)}, "labels": labels.tolist(),
        "params": {k: {"shape": list(v.shape), "values": flat(v)} for k, v in ps.items()},
        "loss": float(f"{float(loss):.12g}"),
        "grads": {k: flat(v.grad) for k, v in ps.items() if v.requires_grad},
    })


seed("mlp")
dims = [20, 32, 16, 5]
mlp = {}
for i in range(3):
    mlp[f"fc{i}.weight"] = torch.randn(dims[i + 1], dims[i]) / dims[i] ** 0.5
    mlp[f"fc{i}.bias"] = torch.randn(dims[i + 1]) * 0.1


def mlp_forward(x, p):
    h = x
    for i in range(3):
        h = F.linear(h, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
        if i < 2:
            h = torch.relu(h)
    return h


composite("nn_mlp", torch.randn(8, 20), torch.randint(0, 5, (8,)), mlp, mlp_forward)

seed("cnn_block")
cnn = {
    "conv1.weight": torch.randn(4, 3, 3, 3) * 0.3, "conv1.bias": torch.randn(4) * 0.1,
    "bn.weight": torch.rand(4) + 0.5, "bn.bias": torch.randn(4) * 0.1,
    "buf.bn.running_mean": torch.randn(4) * 0.2, "buf.bn.running_var": torch.rand(4) + 0.5,
    "conv2.weight": torch.randn(6, 4, 3, 3) * 0.3, "conv2.bias": torch.randn(6) * 0.1,
    "fc.weight": torch.randn(3, 6) * 0.5, "fc.bias": torch.randn(3) * 0.1,
}


def cnn_forward(x, p):
    h = F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1)
    h = F.batch_norm(h, p["buf.bn.running_mean"], p["buf.bn.running_var"], p["bn.weight"], p["bn.bias"], training=False, eps=1e-5)
    h = F.max_pool2d(torch.relu(h), 2, 2)
    h = F.conv2d(h, p["conv2.weight"], p["conv2.bias"])
    return F.linear(h.mean((2, 3)), p["fc.weight"], p["fc.bias"])


composite("nn_cnn_block", torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,)), cnn, cnn_forward)
print(f"wrote {OUT}/nn_*.json")
