"""Reference loss and gradients for the whole unfrozen MobileNetV2 (issue 4), from PyTorch in float64.

First run `npx tsx scripts/gen_mobilenet_grad_fixture.ts [DIR]`, which writes DIR/model.onnx (the converted
MobileNetV2 cut at 'features' plus a seeded linear head to 5 classes, every weight an initializer),
DIR/pixels.f32 (four real photos, prepared as the backbone prepares them) and DIR/meta.json (labels, hashes).
Then, with Debian's python3 (python3-torch, python3-onnx; only on the machine that makes the fixture):

    /usr/bin/python3 scripts/gen_mobilenet_grad_fixture.py [DIR]     # DIR defaults to /tmp/graft-mobilenet-grad

This interprets the ONNX graph node by node with torch ops in float64 (no ONNX-to-torch converter in
between), computes the logits, the mean softmax cross-entropy over the batch and its gradient with respect to
every trainable weight: Conv W (and B), BatchNormalization scale and bias, Gemm W and C. BatchNorm running
mean and variance stay frozen constants (inference form), as in graft's --bn frozen.

It writes fixtures/torch/mobilenet_v2_grads.json, kept small: the loss, the logits, and per parameter its
name, shape, the L2 norm of its gradient, the projections of the gradient onto three pseudo-random vectors,
the whole gradient where it has at most 64 elements, and how far PyTorch's own float32 gradient is from the
float64 one (for scale only). It also lists the activations that sit within KINK_BAND of a ReLU6 bound, with
their float64 values (see kinks()), so the test can tell where float32 took the other side.

The projection vectors come from hash_uniform below, which scripts/gen_mobilenet_grad_fixture.ts implements
the same way (hashUniform): element i of stream `seed` is, with all arithmetic modulo 2^32,
    h = i * 0x9E3779B1 + seed * 0x85EBCA77 + 1
    h ^= h >> 16;  h *= 0x7FEB352D;  h ^= h >> 15;  h *= 0x846CA68B;  h ^= h >> 16
    u = h / 2^31 - 1                                  (in [-1, 1))
over the row-major flattened index i of the parameter, with streams (seeds) 1, 2 and 3.
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "torch" / "mobilenet_v2_grads.json"
SMALL = 64
# Clip inputs closer than this to a bound (but not on it) are listed in the fixture: there float32 rounding
# can put an activation on the other side of the ReLU6 kink than float64 does (see kinks()).
KINK_BAND = 2e-4
M32 = np.uint64(0xFFFFFFFF)


def hash_uniform(n, seed):
    """n values of stream `seed` in [-1, 1) (see the module docstring)."""
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64(seed) * np.uint64(0x85EBCA77) + np.uint64(1)) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & M32
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & M32
    h ^= h >> np.uint64(16)
    return h.astype(np.float64) / 2.0**31 - 1.0


def weights_sha256(inits):
    """sha256 over every initializer in name order: name, dims and raw little-endian bytes (as the TS script)."""
    h = hashlib.sha256()
    for name in sorted(inits):
        a = inits[name]
        h.update(f"{name}\n{','.join(str(d) for d in a.shape)}\n".encode())
        h.update(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def torch_pad(x, pads):
    """ONNX pads [b0, b1, .., e0, e1, ..] as an explicit F.pad (torch's padding= is symmetric only)."""
    r = len(pads) // 2
    spec = []
    for i in reversed(range(r)):
        spec += [pads[i], pads[i + r]]
    return F.pad(x, spec)


def conv(x, w, b, a):
    assert a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"), "auto_pad is not supported"
    k = w.dim() - 2
    assert list(a.get("kernel_shape", w.shape[2:])) == list(w.shape[2:])
    x = torch_pad(x, list(a.get("pads", [0] * 2 * k)))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[k]
    return fn(x, w, b, stride=list(a.get("strides", [1] * k)), dilation=list(a.get("dilations", [1] * k)), groups=a.get("group", 1))


def pool(x, a, kind):
    assert a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET") and not a.get("ceil_mode", 0)
    k = list(a["kernel_shape"])
    r = len(k)
    pads = list(a.get("pads", [0] * 2 * r))
    assert pads[:r] == pads[r:], "asymmetric pooling pads are not supported"
    s = list(a.get("strides", [1] * r))
    if kind == "avg":
        return F.avg_pool2d(x, k, s, pads[:r], count_include_pad=bool(a.get("count_include_pad", 0)))
    return F.max_pool2d(x, k, s, pads[:r], dilation=list(a.get("dilations", [1] * r)))


def batchnorm(x, scale, bias, mean, var, a):
    assert not a.get("training_mode", 0), "training-mode BatchNormalization is not supported"
    shape = [1, -1] + [1] * (x.dim() - 2)
    inv = 1.0 / torch.sqrt(var + a.get("epsilon", 1e-5))
    return (x - mean.reshape(shape)) * (inv * scale).reshape(shape) + bias.reshape(shape)


def gemm(A, B, C, a):
    if a.get("transA", 0):
        A = A.t()
    if a.get("transB", 0):
        B = B.t()
    y = a.get("alpha", 1.0) * (A @ B)
    return y if C is None else y + a.get("beta", 1.0) * C


def flatten(x, a):
    axis = a.get("axis", 1) % x.dim() if x.dim() else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def clip(x, lo, hi, a):
    lo = lo if lo is not None else a.get("min")
    hi = hi if hi is not None else a.get("max")
    # torch.clamp passes the gradient where lo <= x <= hi, as graft's rule (where y == x) does.
    return torch.clamp(x, min=None if lo is None else float(lo), max=None if hi is None else float(hi))


OPS = {
    "Conv": lambda i, a: conv(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "BatchNormalization": lambda i, a: batchnorm(*i, a),
    "Clip": lambda i, a: clip(i[0], i[1] if len(i) > 1 else None, i[2] if len(i) > 2 else None, a),
    "Relu": lambda i, a: F.relu(i[0]),
    "Add": lambda i, a: i[0] + i[1],
    "Identity": lambda i, a: i[0],
    "AveragePool": lambda i, a: pool(i[0], a, "avg"),
    "MaxPool": lambda i, a: pool(i[0], a, "max"),
    "GlobalAveragePool": lambda i, a: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "Flatten": lambda i, a: flatten(i[0], a),
    "Gemm": lambda i, a: gemm(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "Softmax": lambda i, a: torch.softmax(i[0], dim=a.get("axis", -1)),
}
# Inputs that are trainable weights when they are initializers (BatchNorm's 3 and 4 are running statistics).
TRAINABLE = {"Conv": (1, 2), "BatchNormalization": (1, 2), "Gemm": (1, 2)}


def run(g, inits, trainable, pixels, labels, dtype):
    """Interprets the graph in `dtype`: the loss, the logits, the gradients of the trainable weights, and each
    Clip node's input and bounds."""
    vals = {name: torch.from_numpy(a.astype(dtype) if a.dtype.kind == "f" else a) for name, a in inits.items()}
    for name in trainable:
        vals[name].requires_grad_(True)
    vals[g.input[0].name] = pixels.to(torch.float64 if dtype == np.float64 else torch.float32)
    clips = []
    for n in g.node:
        if n.op_type not in OPS:
            raise NotImplementedError(f"op {n.op_type} (node {n.name})")
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        ins = [vals[i] if i else None for i in n.input]
        vals[n.output[0]] = OPS[n.op_type](ins, attrs)
        if n.op_type == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else attrs.get("min", -np.inf)
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else attrs.get("max", np.inf)
            clips.append((n.input[0], float(lo), float(hi), ins[0].detach()))
    logits = vals[g.output[0].name]
    loss = F.cross_entropy(logits, labels)
    return loss, logits, torch.autograd.grad(loss, [vals[name] for name in trainable]), clips


def kinks(clips):
    """The ReLU6 decisions that float32 cannot be trusted to take as float64 does.

    Clip passes the gradient where lo <= x <= hi. An activation within float32 rounding of a bound can land on
    the other side in float32, and then one element's whole upstream gradient is passed or dropped: about
    1/sqrt(n) of a layer's gradient, 1e-3 to 1e-2 relative for MobileNetV2's layers, far above 1e-4. So for
    every Clip input (flattened, NCHW order), list the elements within KINK_BAND of a bound, with their float64
    values; the test reads graft's float32 values there and, where graft decided the other way, moves its
    gradient onto float64's decisions before comparing. Elements exactly on a bound (e.g. channels of exact zeros)
    are left out: float32 computes those zeros exactly too.
    """
    out = []
    for name, lo, hi, x in clips:
        x = x.reshape(-1)
        d = torch.minimum((x - lo).abs(), (x - hi).abs())
        idx = ((d < KINK_BAND) & (d > 0)).nonzero().reshape(-1)
        if len(idx):
            out.append({"tensor": name, "lo": lo, "hi": hi, "index": idx.tolist(), "x": [float(v) for v in x[idx]]})
    return out


def main():
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/graft-mobilenet-grad")
    meta = json.loads((src / "meta.json").read_text())
    model = onnx.load(str(src / "model.onnx"))
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    sha = weights_sha256(inits)
    assert sha == meta["weights_sha256"], f"weights sha256 {sha} != meta.json {meta['weights_sha256']}"
    raw = (src / "pixels.f32").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == meta["pixels_sha256"]
    pixels = torch.from_numpy(np.frombuffer(raw, dtype="<f4").reshape(meta["pixels_shape"]).astype(np.float64))
    labels = torch.tensor(meta["labels"])

    trainable = []
    for n in g.node:
        for k in TRAINABLE.get(n.op_type, ()):
            if k < len(n.input) and n.input[k] in inits and n.input[k] not in trainable:
                trainable.append(n.input[k])
    loss, logits, grads, clips = run(g, inits, trainable, pixels, labels, np.float64)
    # The same computation in float32: how far PyTorch's own float32 gradients are from float64, the floor
    # that any float32 implementation (graft's included) can be expected to reach.
    loss32, _, grads32, _ = run(g, inits, trainable, pixels, labels, np.float32)

    params = []
    for name, gr, gr32 in zip(trainable, grads, grads32):
        flat = gr.detach().reshape(-1).numpy()
        err32 = np.linalg.norm(gr32.detach().reshape(-1).numpy().astype(np.float64) - flat) / np.linalg.norm(flat)
        p = {
            "name": name, "shape": list(gr.shape), "norm": float(np.linalg.norm(flat)), "torch_f32_err": float(err32),
            "proj": [float(flat @ hash_uniform(flat.size, s)) for s in meta["proj_seeds"]],
        }
        if flat.size <= SMALL:
            p["grad"] = [float(v) for v in flat]
        params.append(p)
    fixture = {
        "about": "scripts/gen_mobilenet_grad_fixture.{ts,py}: MobileNetV2 (cut 'features') + seeded linear head, "
                 "mean cross-entropy on 4 photos, torch float64 gradients; proj[k] = <grad, hash_uniform(n, proj_seeds[k])>",
        "torch": torch.__version__,
        **{k: meta[k] for k in ("backbone", "backbone_sha256", "cut", "classes", "images", "labels", "pixels_shape",
                                "pixels_sha256", "weights_sha256", "head_seeds", "proj_seeds")},
        "loss": float(loss),
        "torch_f32_loss_err": abs(float(loss32) - float(loss)) / abs(float(loss)),
        "logits": [float(v) for v in logits.detach().reshape(-1)],
        "params": params,
        "kink_band": KINK_BAND,
        "kinks": kinks(clips),
    }
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    n = sum(len(k["index"]) for k in fixture["kinks"])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): loss {float(loss):.6f}, {len(params)} parameters, {n} activations near a ReLU6 kink")


if __name__ == "__main__":
    main()
