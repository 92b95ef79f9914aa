"""PyTorch side of bench/archs.ts: one full fine-tuning step (forward, cross-entropy, backward, AdamW) of each
architecture of scripts/gen_arch_fixtures.py, float32, eval mode (BatchNorm statistics frozen, as graft's
default), with a new linear head, batch 2; and the LSTM/GRU sequence backbones of scripts/gen_rnn_fixtures.py at
batch 32. Usage: python3 bench/torch_archs.py THREADS STEPS NAME...
Prints one JSON line: {name: ms per step}."""
import json
import pathlib
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
from gen_arch_fixtures import ARCHS, BATCH, CLASSES, strip  # noqa: E402
from gen_rnn_fixtures import BC, BF, BT, SeqBackbone  # noqa: E402

# The sequence backbones (an LSTM/GRU encoder) step on batches of this many sequences of BT x BF.
SEQ_BATCH = 32

threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
out = {"torch": torch.__version__}
for name in sys.argv[3:]:
    if name.startswith("seq_"):
        body = SeqBackbone(name[4:]).eval()
        x = torch.randn(SEQ_BATCH, BT, BF)
        classes = BC
        y = torch.arange(SEQ_BATCH) % classes
    else:
        make, size = ARCHS[name]
        body = strip(name, make()).eval()
        x = torch.randn(BATCH, 3, size, size)
        classes = CLASSES
        y = torch.tensor([0, 3][:BATCH])
    with torch.no_grad():
        dim = body(x[:1]).shape[1]
    model = nn.Sequential(body, nn.Linear(dim, classes))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    out[name] = (time.perf_counter() - t) / steps * 1000

    def grad_only():
        model.zero_grad(set_to_none=True)
        lossf(model(x), y).backward()

    grad_only()
    t = time.perf_counter()
    for _ in range(steps):
        grad_only()
    out[name + ":grad"] = (time.perf_counter() - t) / steps * 1000
print(json.dumps(out))
