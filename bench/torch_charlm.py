"""Reference for bench_charlm.c: the same character LSTM, data order, hyper-parameters and
number of steps in PyTorch. The text's distinct bytes (sorted) are the vocabulary; the last
10% is held out; the rest is cut into B streams read T characters per step, the LSTM state
carried between steps (detached) and zeroed when the streams wrap around.
usage: torch_charlm.py THREADS STEPS [TEXT]
prints "bpc <held-out bits/char>" and "chars_per_sec <training characters per second>" """
import math, os, sys, time

# Debian's torch does its matrix products in OpenBLAS, whose own thread pool fights torch's
# OpenMP threads (ten times slower with both at 2 on 2 cores): one BLAS thread is torch's
# best setting here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch
import torch.nn.functional as F

threads, steps = int(sys.argv[1]), int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/common-licenses/GPL-3"
torch.set_num_threads(threads)
torch.manual_seed(1)
H, T, B, LR, CLIP, HOLDOUT = 128, 64, 32, 2e-3, 5.0, 0.1

data = open(path, "rb").read()
vocab = sorted(set(data))
V = len(vocab)
index = {b: i for i, b in enumerate(vocab)}
ids = torch.tensor([index[b] for b in data], dtype=torch.long)
n_val = int(len(ids) * HOLDOUT)
train, val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]
stride = len(train) // B
chunks = (stride - 1) // T
streams = torch.stack([train[b * stride:(b + 1) * stride] for b in range(B)], 1)  # [stride, B]


class CharLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(V, H)
        self.out = torch.nn.Linear(H, V)
        bound = 1 / math.sqrt(H)  # nerve initialises the output layer like the LSTM
        torch.nn.init.uniform_(self.out.weight, -bound, bound)
        torch.nn.init.uniform_(self.out.bias, -bound, bound)

    def forward(self, x, state):  # x [T, B] indices
        y, state = self.lstm(F.one_hot(x, V).float(), state)
        return self.out(y.reshape(-1, H)), state


model = CharLSTM()
opt = torch.optim.Adam(model.parameters(), lr=LR)
state = None
seconds = 0.0
for step in range(steps):
    t0 = time.perf_counter()
    c = step % chunks
    if c == 0:
        state = None
    x = streams[c * T:c * T + T]
    y = streams[c * T + 1:c * T + T + 1]
    logits, state = model(x, state)
    state = tuple(s.detach() for s in state)
    loss = F.cross_entropy(logits, y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    seconds += time.perf_counter() - t0

with torch.no_grad():
    logits, _ = model(val[:-1].reshape(-1, 1), None)
    nll = F.cross_entropy(logits, val[1:]).item()
print("bpc %.4f" % (nll / math.log(2)))
print("chars_per_sec %.1f" % (steps * T * B / seconds))
