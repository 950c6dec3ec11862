"""Exports the reference models of docs/onnx.md with Debian's python3-torch/torchvision:
resnet18, mobilenet_v2, squeezenet1_0, googlenet, vgg11, alexnet (random weights, seed 0,
batch-norm statistics randomised so that they matter) and a 2-layer bidirectional LSTM.
For each NAME writes OUT/NAME.onnx, OUT/NAME.input.pb (the input, seed 1),
OUT/NAME.input.bin (the same as raw float32), OUT/NAME.torch.bin (PyTorch's output) and
OUT/NAME.shape (the input shape). usage: export_models.py OUT [NAME...]"""
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torchvision


class LSTMModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(16, 32, num_layers=2, bidirectional=True)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):  # x [T, N, 16]
        y, _ = self.lstm(x)
        return self.head(y[-1])


def build(name):
    tv = torchvision.models
    if name == "lstm":
        return LSTMModel(), (12, 1, 16)
    if name == "googlenet":
        return tv.googlenet(weights=None, aux_logits=False, init_weights=True), (1, 3, 224, 224)
    return getattr(tv, name)(weights=None), (1, 3, 224, 224)


def randomise_batchnorm(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or ["resnet18", "mobilenet_v2", "squeezenet1_0", "googlenet",
                             "vgg11", "alexnet", "lstm"]
    os.makedirs(out, exist_ok=True)
    for name in names:
        torch.manual_seed(0)
        model, shape = build(name)
        gen = torch.Generator().manual_seed(2)
        with torch.no_grad():
            randomise_batchnorm(model, gen)
        model.eval()
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            y = model(x)
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                          output_names=["output"])
        onnx.checker.check_model(onnx.load(path))
        xa = x.numpy().astype(np.float32)
        with open(os.path.join(out, name + ".input.pb"), "wb") as f:
            f.write(onnx.numpy_helper.from_array(xa, "input").SerializeToString())
        xa.tofile(os.path.join(out, name + ".input.bin"))
        y.numpy().astype(np.float32).tofile(os.path.join(out, name + ".torch.bin"))
        with open(os.path.join(out, name + ".shape"), "w") as f:
            f.write(" ".join(str(d) for d in shape) + "\n")
        print(name, "exported:", path, "output", tuple(y.shape))


if __name__ == "__main__":
    main()
