"""Reference for bench_mlp.c: the same MLP, data, batch, optimiser and thread count in PyTorch.
usage: torch_mlp.py THREADS STEPS   prints "samples_per_sec <value>" """
import gzip, os, sys, time

# Debian's torch does its matrix products in OpenBLAS, whose own thread pool fights torch's
# OpenMP threads: one BLAS thread is torch's best setting on this kind of machine (measured
# with bench/torch_charlm.py). Set OPENBLAS_NUM_THREADS to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import torch

threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(1)
D = "/usr/share/datasets/fashion-mnist/"
with gzip.open(D + "train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255
with gzip.open(D + "train-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
x, y = torch.from_numpy(x), torch.from_numpy(y)
model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                            torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
lossf = torch.nn.CrossEntropyLoss()
batch, warmup, pos = 64, 20, 0
for s in range(warmup + steps):
    if s == warmup:
        t0 = time.perf_counter()
    if pos + batch > x.shape[0]:
        pos = 0
    xb, yb = x[pos:pos + batch], y[pos:pos + batch]
    pos += batch
    opt.zero_grad(set_to_none=True)
    loss = lossf(model(xb), yb)
    loss.backward()
    opt.step()
secs = time.perf_counter() - t0
print("samples_per_sec %.1f" % (steps * batch / secs))
print("final_loss %.4f" % loss.item())
