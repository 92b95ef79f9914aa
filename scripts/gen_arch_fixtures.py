"""Per-architecture fine-tuning fixtures (issue 17, item 4): torchvision backbones with seeded weights,
exported to ONNX (opset 17, BatchNorm in inference form), and PyTorch's float64 loss and gradients after
one forward/backward with the whole network trainable.

    /usr/bin/python3 scripts/gen_arch_fixtures.py [name ...]     # Debian's python3: torch 1.13, torchvision 0.14

Every floating parameter and buffer of the torch model is set, before export, from the hash stream of
scripts/gen_mobilenet_grad_fixture.py (hash_uniform; hashUniform in the .ts):
    value = float32(shift + scale * hash_uniform(n, seed))
with (seed, shift, scale) per tensor listed in the fixture JSON. The ONNX files keep every initializer of
more than 1024 elements as external data in weights.bin, which is NOT committed: the test rebuilds
weights.bin from the ONNX's external-data entries and the JSON's specs, so fixtures/torch/arch/ stays a few
hundred KB while ResNet-18 alone holds 45 MB of weights. Small initializers stay inline.

Per architecture it writes fixtures/torch/arch/NAME.onnx (input "x" [2, 3, S, S], output "features" [2, C]:
the backbone with its classifier removed) and NAME.json: the weight specs, the input spec, labels, the new
linear head (weight [C, classes] as graft's Gemm head holds it, from seeds 101/102), the float64 loss and
logits, and for a subset of parameters (first, last, and evenly spaced between) the gradient's L2 norm, its
projections onto hash vectors (seeds 1, 2, 3) and the whole gradient where it has at most 64 elements,
plus how far torch's own float32 gradient is from float64 (for scale).
"""
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "torch" / "arch"
TMP = pathlib.Path("/tmp/graft-arch")
M32 = np.uint64(0xFFFFFFFF)
CLASSES = 5
BATCH = 2
LABELS = [0, 3]
PROJ_SEEDS = [1, 2, 3]
HEAD_SEEDS = {"weight": 101, "bias": 102}
INPUT_SEED = 7
KEEP = 24  # parameters whose gradients go into the JSON
EXTERNAL_MIN = 1024


def hash_uniform(n, seed):
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64(seed) * np.uint64(0x85EBCA77) + np.uint64(1)) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & M32
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & M32
    h ^= h >> np.uint64(16)
    return h.astype(np.float64) / 2.0**31 - 1.0


def spec_values(n, s):
    return (s["shift"] + s["scale"] * hash_uniform(n, s["seed"])).astype(np.float32)


def tiny_vit():
    return tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)


def narrow_convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    # ConvNeXt-Tiny's blocks, stages and layer scale, at a quarter of its width and depths (1, 1, 3, 1).
    cfg = [CNBlockConfig(24, 48, 1), CNBlockConfig(48, 96, 1), CNBlockConfig(96, 192, 3), CNBlockConfig(192, None, 1)]
    return ConvNeXt(cfg, stochastic_depth_prob=0.0)


def strip(name, m):
    """The backbone: the classifier replaced by Identity, so the output is the pooled feature vector."""
    if name in ("resnet18", "resnet50", "regnet_x_400mf"):
        m.fc = nn.Identity()
    elif name in ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"):
        m.classifier = nn.Identity()
    elif name.startswith("convnext"):
        m.classifier[2] = nn.Identity()  # keep its LayerNorm2d and Flatten
    elif name == "vit_tiny":
        m.heads = nn.Identity()
    elif name == "swin_t":
        m.head = nn.Identity()
    return m


ARCHS = {
    "resnet18": (lambda: tvm.resnet18(), 64),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(), 64),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(), 64),
    "regnet_x_400mf": (lambda: tvm.regnet_x_400mf(), 64),
    "convnext_narrow": (narrow_convnext, 64),
    "vit_tiny": (tiny_vit, 32),
    "resnet50": (lambda: tvm.resnet50(), 64),
    "mobilenet_v3_large": (lambda: tvm.mobilenet_v3_large(), 64),
    "swin_t": (lambda: tvm.swin_t(), 64),
    "convnext_tiny": (lambda: tvm.convnext_tiny(), 64),
}


def seed_weights(m):
    """Sets every floating parameter and buffer from the hash stream; returns the specs by state_dict name."""
    specs = {}
    sd = m.state_dict()
    params = dict(m.named_parameters())
    for k, (name, t) in enumerate(sd.items()):
        if not t.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            s = {"shift": 1.0, "scale": 0.5}
        elif leaf == "running_mean":
            s = {"shift": 0.0, "scale": 0.1}
        elif t.dim() >= 2 and name in params and leaf != "layer_scale" and "pos_embedding" not in name and "class_token" not in name:
            fan_in = t[0].numel()
            s = {"shift": 0.0, "scale": float(np.sqrt(6.0 / fan_in))}  # He uniform
        elif leaf == "weight":  # BatchNorm / LayerNorm scales
            s = {"shift": 1.0, "scale": 0.2}
        elif leaf == "layer_scale":
            s = {"shift": 0.5, "scale": 0.2}
        else:  # biases, class token, position embeddings
            s = {"shift": 0.0, "scale": 0.1}
        s["seed"] = 1000 + k
        with torch.no_grad():
            t.copy_(torch.from_numpy(spec_values(t.numel(), s).reshape(tuple(t.shape))))
        specs[name] = s
    return specs


def main():
    names = sys.argv[1:] or list(ARCHS)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name in names:
        make, size = ARCHS[name]
        torch.manual_seed(0)
        m = strip(name, make()).eval()
        specs = seed_weights(m)
        x_spec = {"seed": INPUT_SEED, "shift": 0.0, "scale": 1.0}
        x = torch.from_numpy(spec_values(BATCH * 3 * size * size, x_spec).reshape(BATCH, 3, size, size))
        TMP.mkdir(parents=True, exist_ok=True)
        path = TMP / f"{name}.onnx"
        # PRESERVE with the model in eval mode: BatchNormalization stays a node in inference form (EVAL would
        # fold it into the Conv, and the BN scales and shifts would no longer be weights of their own).
        # No constant folding, so weights keep their state_dict names (a Linear's weight stays an initializer
        # behind a Transpose rather than a folded, renamed copy).
        torch.onnx.export(m, (x,), str(path), opset_version=17, input_names=["x"], output_names=["features"],
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                          dynamic_axes={"x": {0: "N"}, "features": {0: "N"}})
        # The reference: the same network in float64, a new linear head, mean cross-entropy, all weights trainable.
        def step(dtype):
            mm = strip(name, make()).eval()
            mm.load_state_dict(m.state_dict())
            mm = mm.to(dtype)
            feats_dim = None
            with torch.no_grad():
                feats_dim = mm(x.to(dtype)).shape[1]
            hw = torch.from_numpy(hash_uniform(feats_dim * CLASSES, HEAD_SEEDS["weight"]) * 0.05).to(torch.float32).to(dtype)
            hw = hw.reshape(feats_dim, CLASSES).requires_grad_(True)
            hb = torch.from_numpy(hash_uniform(CLASSES, HEAD_SEEDS["bias"]) * 0.1).to(torch.float32).to(dtype).requires_grad_(True)
            feats = mm(x.to(dtype))
            logits = feats @ hw + hb
            loss = F.cross_entropy(logits, torch.tensor(LABELS))
            named = list(mm.named_parameters())
            grads = torch.autograd.grad(loss, [p for _, p in named] + [hw, hb])
            out = {n: g for (n, _), g in zip(named, grads[:-2])}
            out["linear.weight"], out["linear.bias"] = grads[-2], grads[-1]
            return float(loss), logits.detach(), out, feats_dim

        loss, logits, grads, dim = step(torch.float64)
        loss32, _, grads32, _ = step(torch.float32)
        order = list(grads)
        idx = sorted(set(np.linspace(0, len(order) - 1, min(KEEP, len(order))).round().astype(int).tolist()))
        params = []
        for i in idx:
            n = order[i]
            flat = grads[n].detach().reshape(-1).numpy()
            f32 = grads32[n].detach().reshape(-1).numpy().astype(np.float64)
            norm = float(np.linalg.norm(flat))
            p = {"name": n, "shape": list(grads[n].shape), "norm": norm,
                 "proj": [float(flat @ hash_uniform(flat.size, s)) for s in PROJ_SEEDS],
                 "torch_f32_err": float(np.linalg.norm(f32 - flat) / max(norm, 1e-300))}
            if flat.size <= 64:
                p["grad"] = [float(v) for v in flat]
            params.append(p)
        fx = {
            "about": "scripts/gen_arch_fixtures.py: torchvision backbone, seeded weights, + linear head; torch float64 one-step loss and gradients",
            "torch": torch.__version__, "arch": name, "size": size, "batch": BATCH, "classes": CLASSES, "labels": LABELS,
            "features": dim, "input": x_spec, "head_seeds": HEAD_SEEDS, "head_scales": {"weight": 0.05, "bias": 0.1},
            "proj_seeds": PROJ_SEEDS, "weights": specs,
            "loss": loss, "torch_f32_loss_err": abs(loss32 - loss) / abs(loss),
            "logits": [float(v) for v in logits.reshape(-1)],
            "param_count": len(order), "params": params,
        }
        (OUT / f"{name}.json").write_text(json.dumps(fx, separators=(",", ":")) + "\n")
        print(f"{name}: {path} {path.stat().st_size} bytes, loss {loss:.6f}, {len(order)} params, f32 loss err {fx['torch_f32_loss_err']:.1e}")


if __name__ == "__main__":
    main()
