"""The solver's CRNN in PyTorch, timed the way solver/bench_test.go times ours.

Same architecture (solver.DefaultArchitecture: Table 6 with height-only pools in
the last two blocks), same batch sizes, same measurements:
  forward          one image, inference mode
  gradient         one image, forward + d(CTC loss)/d(pixels), inference mode
  attack10         ten gradient steps of an iterative attack on one image
  train32          one training step (forward, backward, Adam) on 32 images
Prints one line per measurement: name, ms per op, GFLOP/s, and the peak RSS.
"""
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

H, W, K, T = 30, 100, 32, 25
CONV = [(64, 2, 2), (128, 2, 2), (128, 2, 1), (64, 2, 1)]
HIDDEN = 256


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
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    torch.manual_seed(1)
    model = CRNN()
    x1 = torch.rand(1, 1, H, W)
    tg, il, tl = targets(1)

    model.eval()

    def forward():
        with torch.no_grad():
            model(x1)

    def gradient():
        x = x1.clone().requires_grad_(True)
        loss = F.ctc_loss(model(x), tg, il, tl, reduction="sum")
        return torch.autograd.grad(loss, x)[0]

    def attack10():
        x = x1.clone()
        for _ in range(10):
            g = gradient_at(x)
            x = (x + 2 / 255 * g.sign()).clamp(0, 1)

    def gradient_at(x):
        x = x.clone().requires_grad_(True)
        loss = F.ctc_loss(model(x), tg, il, tl, reduction="sum")
        return torch.autograd.grad(loss, x)[0]

    fwd = flops_forward()
    results = [("forward", timeit(forward, n), fwd),
               ("gradient", timeit(gradient, n), 2 * fwd),
               ("attack10", timeit(attack10, max(2, n // 5)), 20 * fwd)]

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x32 = torch.rand(32, 1, H, W)
    tg32, il32, tl32 = targets(32)

    def train32():
        opt.zero_grad()
        loss = F.ctc_loss(model(x32), tg32, il32, tl32, reduction="sum") / 32
        loss.backward()
        opt.step()

    results.append(("train32", timeit(train32, max(2, n // 5)), 32 * 3 * fwd))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, sec, flops in results:
        print(f"pytorch {name} {sec * 1e3:.2f} ms {flops / sec / 1e9:.2f} GFLOP/s rss {rss:.0f} MB")


if __name__ == "__main__":
    main()
