"""Reference for bench_cfg.c: the same convolutional networks, batch sizes, optimiser, thread
count and synthetic data in PyTorch.
usage: torch_conv.py WORKLOAD THREADS STEPS [BATCH]
  WORKLOAD: lenet5 (training, batch 64, 1x28x28), resnet20, mobilenetv2, vgg (training,
            batch 128, 3x32x32: models/resnet20.cfg, bench/cfg/mobilenetv2_cifar.cfg,
            bench/cfg/vgg_cifar.cfg),
            latency_lenet5, latency_resnet18 (eval mode, batch BATCH (default 1), median of
            STEPS forwards), export_lenet5, export_resnet18 (the eval-mode model as ONNX, to
            the file named by STEPS, for ONNX Runtime: bench/onnx/ort_bench.js)
prints "samples_per_sec <v>" or "latency_ms <v>" (and the samples/s it makes), then
"peak_rss_mb <v>" (getrusage).
The models match models/lenet5.cfg, models/resnet20.cfg and models/resnet18.cfg layer for
layer (same parameter counts)."""
import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see torch_mlp.py
import torch
import torch.nn as nn

workload, threads = sys.argv[1], int(sys.argv[2])
steps = int(sys.argv[3]) if not workload.startswith("export_") else 0
batch_arg = int(sys.argv[4]) if len(sys.argv) > 4 else 1
torch.set_num_threads(threads)
torch.manual_seed(1)


class Basic(nn.Module):
    """Two 3x3 convolutions with batch norm; a 1x1 projection (+BN) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.proj is None else self.proj(x)))


def stages(cin, widths, blocks):
    layers = []
    for i, c in enumerate(widths):
        for j in range(blocks):
            layers.append(Basic(cin, c, 2 if (i > 0 and j == 0) else 1))
            cin = c
    return layers


def resnet20():
    return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         *stages(16, (16, 32, 64), 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def resnet18():
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *stages(64, (64, 128, 256, 512), 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))


def bn_conv(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU()] if act else layers


class Inverted(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expansion, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin, cout, t, stride):
        super().__init__()
        hid = cin * t
        layers = (bn_conv(cin, hid, 1) if t != 1 else []) + bn_conv(hid, hid, 3, stride, hid)
        self.body = nn.Sequential(*layers, *bn_conv(hid, cout, 1, act=False))
        self.identity = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.identity else y


def mobilenetv2():
    layers, cin = bn_conv(3, 32, 3), 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 2, 2)):
        for i in range(n):
            layers.append(Inverted(cin, c, t, s if i == 0 else 1))
            cin = c
    return nn.Sequential(*layers, *bn_conv(cin, 256, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(256, 10))


def vgg():
    layers, cin = [], 3
    for x in (32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256, "M"):
        if x == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += bn_conv(cin, x, 3)
            cin = x
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256, 10))


def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


if workload in ("lenet5", "resnet20", "mobilenetv2", "vgg"):
    model = {"lenet5": lenet5, "resnet20": resnet20, "mobilenetv2": mobilenetv2, "vgg": vgg}[workload]()
    batch = 64 if workload == "lenet5" else 128
    shape = (1, 28, 28) if workload == "lenet5" else (3, 32, 32)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    warmup = 3
    for s in range(warmup + steps):
        if s == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
    print("samples_per_sec %.1f" % (steps * batch / (time.perf_counter() - t0)))
elif workload in ("export_lenet5", "export_resnet18"):
    model = lenet5() if workload == "export_lenet5" else resnet18()
    model.eval()
    x = torch.randn(1, 1, 28, 28) if workload == "export_lenet5" else torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, sys.argv[3], input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=13)
    sys.exit(0)
elif workload in ("latency_lenet5", "latency_resnet18"):
    model = lenet5() if workload == "latency_lenet5" else resnet18()
    model.eval()
    b = batch_arg
    x = torch.randn(b, 1, 28, 28) if workload == "latency_lenet5" else torch.randn(b, 3, 224, 224)
    times = []
    with torch.no_grad():
        for s in range(3 + steps):
            t0 = time.perf_counter()
            model(x)
            if s >= 3:
                times.append(time.perf_counter() - t0)
    times.sort()
    print("latency_ms %.3f" % (1e3 * times[len(times) // 2]))
    print("samples_per_sec %.1f" % (b / times[len(times) // 2]))
else:
    sys.exit("unknown workload " + workload)
print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
