"""PyTorch side of bench/engine.ts: the same MLP and CNN train steps, timed per step.
Usage: python3 bench/torch_engine.py THREADS. Prints one JSON line."""
import json, sys, time
import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)


def per_step(model, x, y, steps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


mlp = torch.nn.Sequential(torch.nn.Linear(1024, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
mlp_s = per_step(mlp, torch.randn(64, 1024), torch.randint(0, 10, (64,)), 200)

cnn = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1, bias=False), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(32, 64, 3, padding=1, bias=False), torch.nn.BatchNorm2d(64), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
cnn.eval()  # BatchNorm with frozen statistics, as in graft; gradients still flow to every parameter
cnn_s = per_step(cnn, torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)), 30)
print(json.dumps({"torch": torch.__version__, "threads": threads, "mlp_ms": mlp_s * 1000, "cnn_ms": cnn_s * 1000}))
