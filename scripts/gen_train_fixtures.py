"""Reference values from PyTorch (float64) for graft's losses and optimizers.
Run with Debian's python3 (python3-torch): /usr/bin/python3 scripts/gen_train_fixtures.py
Writes fixtures/torch/train.json. Deterministic: rerunning gives the same file."""
import json, pathlib
import torch

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
out = {}
r = lambda t: [round(float(v), 12) for v in t.detach().reshape(-1).tolist()]

# ---- losses: value and gradient wrt logits ----
B, K = 6, 4
z = torch.randn(B, K, requires_grad=True)
y = torch.tensor([0, 3, 1, 1, 2, 3])
cases = {}
for name, kw in {
    "ce": {},
    "ce_smooth": {"label_smoothing": 0.1},
    "ce_weighted": {"weight": torch.tensor([1.0, 2.0, 0.5, 1.5])},
    "ce_weighted_smooth": {"weight": torch.tensor([1.0, 2.0, 0.5, 1.5]), "label_smoothing": 0.2},
}.items():
    z.grad = None
    loss = torch.nn.functional.cross_entropy(z, y, **kw)
    loss.backward()
    cases[name] = {"loss": float(loss), "dlogits": r(z.grad),
                   "weight": r(kw["weight"]) if "weight" in kw else None, "smoothing": kw.get("label_smoothing", 0.0)}
t = (torch.rand(B, K) > 0.5).double()
z.grad = None
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t)
loss.backward()
cases["bce"] = {"loss": float(loss), "dlogits": r(z.grad), "target": r(t)}
z.grad = None
tt = torch.randn(B, K)
loss = torch.nn.functional.mse_loss(z, tt)
loss.backward()
cases["mse"] = {"loss": float(loss), "dlogits": r(z.grad), "target": r(tt)}
out["losses"] = {"logits": r(z), "shape": [B, K], "labels": y.tolist(), "cases": cases}

# ---- optimizers: 5 full-batch steps of a 2-layer MLP (groups: body, head) ----
N, D, H, C = 8, 4, 5, 3
x = torch.randn(N, D)
yy = torch.randint(0, C, (N,))
W1, b1 = torch.randn(D, H) * 0.5, torch.randn(H) * 0.1
W2, b2 = torch.randn(H, C) * 0.5, torch.randn(C) * 0.1
init = {"body.weight": W1, "body.bias": b1, "head.weight": W2, "head.bias": b2}
opt_cases = {}
lrs, wds = [0.05, 0.2], [0.1, 0.3]
for name, make in {
    "sgd": lambda g: torch.optim.SGD(g),
    "sgd_momentum": lambda g: torch.optim.SGD(g, momentum=0.9),
    "sgd_nesterov": lambda g: torch.optim.SGD(g, momentum=0.9, nesterov=True),
    "adamw": lambda g: torch.optim.AdamW(g, betas=(0.9, 0.999), eps=1e-8),
    "sgd_dampening": lambda g: torch.optim.SGD(g, momentum=0.9, dampening=0.3),
    "adam": lambda g: torch.optim.Adam(g, betas=(0.9, 0.999), eps=1e-8),
    "adagrad": lambda g: torch.optim.Adagrad(g, lr_decay=0.1, eps=1e-10, initial_accumulator_value=0.1),
}.items():
    p = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    groups = [
        {"params": [p["body.weight"]], "lr": lrs[0], "weight_decay": wds[0]},
        {"params": [p["body.bias"]], "lr": lrs[0], "weight_decay": 0.0},
        {"params": [p["head.weight"]], "lr": lrs[1], "weight_decay": wds[1]},
        {"params": [p["head.bias"]], "lr": lrs[1], "weight_decay": 0.0},
    ]
    opt = make(groups)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        logits = torch.relu(x @ p["body.weight"] + p["body.bias"]) @ p["head.weight"] + p["head.bias"]
        loss = torch.nn.functional.cross_entropy(logits, yy)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    opt_cases[name] = {"losses": losses, "final": {k: r(v) for k, v in p.items()}}
out["optim"] = {"x": r(x), "y": yy.tolist(), "dims": [N, D, H, C], "init": {k: r(v) for k, v in init.items()},
                "lrs": lrs, "wds": wds, "cases": opt_cases}

# ---- one-cycle schedule (PyTorch OneCycleLR, cos annealing) ----
m = torch.nn.Linear(1, 1)
o = torch.optim.SGD(m.parameters(), lr=0.1)
s = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20, pct_start=0.3, div_factor=25, final_div_factor=1e4,
                                        anneal_strategy="cos", cycle_momentum=False)
lr = []
for _ in range(20):
    lr.append(o.param_groups[0]["lr"])
    o.step()
    s.step()
out["onecycle"] = {"max_lr": 0.1, "total": 20, "pct_start": 0.3, "lrs": lr}
c = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.SGD(m.parameters(), lr=0.1), T_max=9, eta_min=0.001)
lr = []
for _ in range(10):
    lr.append(c.optimizer.param_groups[0]["lr"])
    c.optimizer.step()
    c.step()
out["cosine"] = {"max_lr": 0.1, "min_lr": 0.001, "total": 10, "lrs": lr}

path = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "torch" / "train.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
