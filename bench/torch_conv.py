"""Reference for bench_cfg.c: the same convolutional networks, batch sizes, optimiser, thread
count and synthetic data in PyTorch.
usage: torch_conv.py WORKLOAD THREADS STEPS
  WORKLOAD: lenet5 (training, batch 64, 1x28x28), resnet20 (training, batch 128, 3x32x32),
            latency_lenet5, latency_resnet18 (eval mode, batch 1, median of STEPS forwards)
prints "samples_per_sec <v>" or "latency_ms <v>", then "peak_rss_mb <v>" (getrusage).
The models match models/lenet5.cfg, models/resnet20.cfg and models/resnet18.cfg layer for
layer (same parameter counts)."""
import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see torch_mlp.py
import torch
import torch.nn as nn

workload, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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


def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


if workload in ("lenet5", "resnet20"):
    model = lenet5() if workload == "lenet5" else resnet20()
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
elif workload in ("latency_lenet5", "latency_resnet18"):
    model = lenet5() if workload == "latency_lenet5" else resnet18()
    model.eval()
    x = torch.randn(1, 1, 28, 28) if workload == "latency_lenet5" else torch.randn(1, 3, 224, 224)
    times = []
    with torch.no_grad():
        for s in range(3 + steps):
            t0 = time.perf_counter()
            model(x)
            if s >= 3:
                times.append(time.perf_counter() - t0)
    times.sort()
    print("latency_ms %.3f" % (1e3 * times[len(times) // 2]))
else:
    sys.exit("unknown workload " + workload)
print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
