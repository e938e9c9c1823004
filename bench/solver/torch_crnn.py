"""The solver's CRNN in PyTorch at its best, timed the way solver/bench_test.go times ours.

Same architecture (solver.DefaultArchitecture: Table 6 with height-only pools in
the last two blocks), same FLOP convention, and these measurements (ms per image):
  forward     b1 b16 b32   inference mode
  gradient    b1 b16 b32   forward + d(CTC loss)/d(pixels), eval mode, weights frozen
  attack10    b1 b32       ten signed-gradient steps (as BenchmarkAttack10), per image
  train32     b32          one training step (forward, backward, Adam) on 32 images

Refuses to run (exit 3) unless torch's BLAS is OpenBLAS (bench/solver/blas.py).
Every row is measured in a fresh process for each setting of the grid
torch.set_num_threads {1, 2} × OPENBLAS_NUM_THREADS {1, 2}; each process's peak
RSS is its own. Prints every trial ("pytorch-trial ...") and then, per row, the
fastest ("pytorch ..."), with the setting that gave it:

  pytorch forward b16 4.91 ms/img 45.10 GFLOP/s rss 512 MB torch-threads 2 openblas-threads 1 core Haswell n 20

  python3 bench/solver/torch_crnn.py N            # the grid, N repetitions of the fast rows
  python3 bench/solver/torch_crnn.py N ROW T      # one row in this process, T torch threads
                                                  # (what the grid runs, with OPENBLAS_NUM_THREADS set)
"""
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import blas

H, W, K, T = 30, 100, 32, 25
CONV = [(64, 2, 2), (128, 2, 2), (128, 2, 1), (64, 2, 1)]
HIDDEN = 256

# name -> (kind, batch, FLOPs per image as a multiple of one forward pass, slow)
ROWS = {
    "forward-b1": ("forward", 1, 1, False),
    "forward-b16": ("forward", 16, 1, False),
    "forward-b32": ("forward", 32, 1, False),
    "gradient-b1": ("gradient", 1, 2, False),
    "gradient-b16": ("gradient", 16, 2, False),
    "gradient-b32": ("gradient", 32, 2, False),
    "attack10-b1": ("attack10", 1, 20, True),
    "attack10-b32": ("attack10", 32, 20, True),
    "train32-b32": ("train", 32, 3, True),
}
GRID = [(t, b) for t in (1, 2) for b in (1, 2)]
# For checking the script on a busy machine: PYTORCH_ROWS="forward-b1 train32-b32",
# PYTORCH_GRID="1x1 2x1" (torch threads x OpenBLAS threads). Unset: everything.
if os.environ.get("PYTORCH_ROWS"):
    ROWS = {r: ROWS[r] for r in os.environ["PYTORCH_ROWS"].split()}
if os.environ.get("PYTORCH_GRID"):
    GRID = [tuple(int(v) for v in g.split("x")) for g in os.environ["PYTORCH_GRID"].split()]


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for f, ph, pw in CONV:
            layers += [nn.Conv2d(cin, f, 3, 1, 1, bias=False), nn.BatchNorm2d(f, eps=1e-5),
                       nn.LeakyReLU(0.01), nn.MaxPool2d((ph, pw))]
            cin = f
        self.conv = nn.Sequential(*layers)
        self.lstm = nn.LSTM(cin * 1, HIDDEN, num_layers=2)
        self.fc = nn.Linear(HIDDEN, K)

    def forward(self, x):
        f = self.conv(x)                      # (B, C, 1, T)
        f = f.flatten(1, 2).permute(2, 0, 1)  # (T, B, C)
        out, _ = self.lstm(f)
        return F.log_softmax(self.fc(out), dim=2)  # (T, B, K)


def flops_forward():
    """Multiply-adds ×2 of convolutions, LSTMs and the output layer, per image."""
    total, cin, h, w = 0, 1, H, W
    for f, ph, pw in CONV:
        total += 2 * cin * 9 * f * h * w
        cin, h, w = f, h // ph, w // pw
    inp = cin * h
    for _ in range(2):
        total += T * 2 * (inp + HIDDEN) * 4 * HIDDEN
        inp = HIDDEN
    total += T * 2 * HIDDEN * K
    return total


def targets(b):
    t = torch.randint(1, K, (b, 6))
    return t, torch.full((b,), T, dtype=torch.long), torch.full((b,), 5, dtype=torch.long)


def timeit(fn, n):
    fn()  # warm up: oneDNN builds its primitives on the first call
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def measure(row, n):
    """Seconds per call of one row, in this process."""
    kind, batch, _, _ = ROWS[row]
    torch.manual_seed(1)
    model = CRNN()
    x = torch.rand(batch, 1, H, W)
    tg, il, tl = targets(batch)

    if kind == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train():
            opt.zero_grad(set_to_none=True)
            loss = F.ctc_loss(model(x), tg, il, tl, reduction="sum") / batch
            loss.backward()
            opt.step()
        return timeit(train, n)

    model.eval()
    for p in model.parameters():  # the input gradient only: no weight gradients computed
        p.requires_grad_(False)

    if kind == "forward":
        def forward():
            with torch.inference_mode():
                model(x)
        return timeit(forward, n)

    def gradient_at(x0):
        xg = x0.detach().requires_grad_(True)
        # reduction="sum": each image's gradient is its own loss's
        loss = F.ctc_loss(model(xg), tg, il, tl, reduction="sum")
        return torch.autograd.grad(loss, xg)[0]

    if kind == "gradient":
        return timeit(lambda: gradient_at(x), n)

    def attack10():
        xa = x.clone()
        for _ in range(10):
            g = gradient_at(xa)
            xa = (xa + 2 / 255 * g.sign()).clamp_(0, 1)
    return timeit(attack10, n)


def reps(row, n):
    kind, batch, _, slow = ROWS[row]
    if slow:
        return max(2, n // 5)
    return n if batch == 1 else max(2, n // 2)


def one(row, n, torch_threads):
    """Runs one row here; prints its trial line."""
    torch.set_num_threads(torch_threads)
    try:
        h, _ = blas.openblas()
    except blas.NotOpenBLAS as e:
        print(f"REFUSED: torch is not using OpenBLAS: {e}", file=sys.stderr)
        sys.exit(3)
    kind, batch, mult, _ = ROWS[row]
    k = reps(row, n)
    sec = measure(row, k)
    per_img = sec / batch
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch-trial {kind} b{batch} {per_img * 1e3:.2f} ms/img "
          f"{mult * flops_forward() / per_img / 1e9:.2f} GFLOP/s rss {rss:.0f} MB "
          f"torch-threads {torch.get_num_threads()} openblas-threads {h.openblas_get_num_threads()} "
          f"core {blas.corename(h)} n {k}", flush=True)


def grid(n):
    try:
        blas.openblas()
    except blas.NotOpenBLAS as e:
        print(f"REFUSED: torch is not using OpenBLAS, no PyTorch figures reported: {e}", file=sys.stderr)
        sys.exit(3)
    best = {}
    for row in ROWS:
        for t, b in GRID:
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(b), OMP_NUM_THREADS=str(t))
            p = subprocess.run([sys.executable, os.path.abspath(__file__), str(n), row, str(t)],
                               env=env, capture_output=True, text=True)
            if p.returncode != 0:
                sys.stderr.write(p.stderr)
                print(f"pytorch {row} failed (torch-threads {t} openblas-threads {b}, exit {p.returncode})",
                      file=sys.stderr)
                sys.exit(p.returncode)
            line = p.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            ms = float(line.split()[3])
            if row not in best or ms < best[row][0]:
                best[row] = (ms, line)
    for row in ROWS:
        print(best[row][1].replace("pytorch-trial ", "pytorch ", 1))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if len(sys.argv) > 3:
        one(sys.argv[2], n, int(sys.argv[3]))
    else:
        grid(n)


if __name__ == "__main__":
    main()
