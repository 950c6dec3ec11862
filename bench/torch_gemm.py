"""Reference for gemm_bench.c: GFLOP/s of torch.mm on square float32 products.
usage: torch_gemm.py THREADS SIZE...   prints "sgemm <size> <threads> <gflops>" per size
(best of several runs, like gemm_bench)."""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", sys.argv[1])  # torch.mm runs in OpenBLAS here
import torch

threads = int(sys.argv[1])
torch.set_num_threads(threads)
for size in map(int, sys.argv[2:]):
    a, b = torch.randn(size, size), torch.randn(size, size)
    c = torch.mm(a, b)
    reps = max(3, int(2e9 / (2.0 * size ** 3)))
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        best = min(best, (time.perf_counter() - t0) / reps)
    print("sgemm %d %d %.1f" % (size, threads, 2.0 * size ** 3 / best / 1e9))
