"""A tiny network exported by PyTorch's own ONNX exporter, to test graft's loader on a real exporter's
output. Run with Debian's python3: /usr/bin/python3 scripts/gen_onnx_fixture.py"""
import json, pathlib
import torch

torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
    torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5)).eval()
with torch.no_grad():
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 1.5)
x = torch.randn(2, 3, 8, 8)
here = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "torch"
torch.onnx.export(net, x, str(here / "tiny_cnn.onnx"), input_names=["pixels"], output_names=["logits"],
                  dynamic_axes={"pixels": {0: "n"}}, opset_version=13, do_constant_folding=True)
with torch.no_grad():
    y = net(x)
    relu = net[2](net[1](net[0](x)))
(here / "tiny_cnn.json").write_text(json.dumps({"x": x.reshape(-1).tolist(), "logits": y.reshape(-1).tolist(),
                                                 "relu": relu.reshape(-1).tolist()}) + "\n")
print("wrote", here / "tiny_cnn.onnx")
