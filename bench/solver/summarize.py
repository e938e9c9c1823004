"""Turns bench/out/solver.txt (bench/solver/run.sh's raw lines) into the Markdown table.

Every cell is ms per image and GFLOP/s, with that GFLOP/s as a share of the
SGEMM peak measured in the same run at the same number of cores (the best of
C, numpy and torch over the shapes in blas.py). Go's measurements use both
cores (BLAS on two threads, or two training workers of one thread each);
PyTorch's use max(torch threads, OpenBLAS threads) of the best setting.

  python3 bench/solver/summarize.py bench/out/solver.txt
"""
import sys

ROWS = [("forward", 1), ("forward", 16), ("forward", 32),
        ("gradient", 1), ("gradient", 16), ("gradient", 32),
        ("attack10", 1), ("attack10", 32), ("train", 32)]
LABEL = {"forward": "forward", "gradient": "forward + input gradient",
         "attack10": "10-step attack", "train": "training step"}


def main(path):
    peak, peak_auto, cells, notes = {}, {}, {}, []
    impls = []
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if line.startswith("#"):
            if "WARNING" in line or line.startswith("# date") or line.startswith("# load"):
                notes.append(line[2:].strip())
            continue
        if f[0] in ("peak", "peak-autocore"):
            t, g = int(f[4]), float(f[5])
            d = peak if f[0] == "peak" else peak_auto
            if g > d.get(t, (0,))[0]:
                d[t] = (g, f"{f[1]} {f[2]}, core {f[-1]}")
            continue
        if f[0].startswith("go-") or f[0] == "pytorch":
            impl, kind, batch = f[0], f[1], int(f[2][1:])
            ms, gf, rss = float(f[3]), f[5], f[8]
            if impl == "pytorch":
                t, b = int(f[11]), int(f[13])
                cores, setting = max(t, b), f"torch {t} / OpenBLAS {b} thr"
            else:
                cores, setting = 2, ""
            cells[(impl, kind, batch)] = (ms, gf, rss, cores, setting)
            if impl not in impls:
                impls.append(impl)
    rows = ROWS + sorted({(k, b) for (_, k, b) in cells} - set(ROWS))

    def cell(impl, kind, batch):
        c = cells.get((impl, kind, batch))
        if c is None:
            return "—"
        ms, gf, rss, cores, setting = c
        share = ""
        if gf != "-" and cores in peak:
            share = f" ({100 * float(gf) / peak[cores][0]:.0f}% of peak)"
        s = f"{ms:.1f} ms · {gf} GFLOP/s{share} · {rss} MB"
        return s + (f" · {setting}" if setting else "")

    pk = " / ".join(f"{peak[t][0]:.0f}" for t in sorted(peak)) or "?"
    head = ["measurement (per image)"] + impls + ["openblas / PyTorch", "SGEMM peak, 1 / 2 threads"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for kind, batch in rows:
        line = [f"{LABEL.get(kind, kind)}, batch {batch}"] + [cell(i, kind, batch) for i in impls]
        a, b = cells.get(("go-openblas", kind, batch)), cells.get(("pytorch", kind, batch))
        line.append(f"{a[0] / b[0]:.2f}×" if a and b else "—")
        line.append(f"{pk} GFLOP/s")
        print("| " + " | ".join(line) + " |")
    print()
    for t in sorted(peak):
        print(f"SGEMM peak at {t} thread{'s' if t > 1 else ''}: {peak[t][0]:.1f} GFLOP/s ({peak[t][1]})")
    for t in sorted(peak_auto):
        print(f"  without OPENBLAS_CORETYPE, {t} thread{'s' if t > 1 else ''}: "
              f"{peak_auto[t][0]:.1f} GFLOP/s ({peak_auto[t][1]})")
    for n in notes:
        print(n)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/out/solver.txt")
