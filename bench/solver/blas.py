"""Which BLAS this Python process really uses, and how fast SGEMM runs in it.

Debian's python3-torch and python3-numpy link against libblas.so.3, which the
alternatives system points at one implementation: OpenBLAS
(libopenblas0-pthread) or the reference BLAS (libblas3, ~50× slower). torch's
own build info says only "BLAS_INFO=generic", so the check reads what the
dynamic linker actually mapped (/proc/self/maps) and which library defines the
sgemm_ symbol that libtorch_cpu calls (dladdr), and refuses anything but
OpenBLAS.

  python3 bench/solver/blas.py check      # print the BLAS in use; exit 3 unless OpenBLAS
  python3 bench/solver/blas.py gemm N     # SGEMM GFLOP/s via numpy and torch, 1 and 2 OpenBLAS threads
"""
import ctypes
import os
import sys
import time

# The largest GEMMs of solver.DefaultArchitecture: the second convolution as
# im2col (128 filters × 64·3·3 taps × 15·50 positions per image), for one image
# and for a batch of 32, next to the square 1024³ everyone quotes.
SHAPES = [(1024, 1024, 1024), (128, 750, 576), (128, 24000, 576)]


class NotOpenBLAS(RuntimeError):
    pass


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _mapped_libraries():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5]:
                libs.add(parts[5])
    return libs


def _defining_library(symbol, lib):
    """The file that defines symbol as lib sees it (lib, then its dependencies), or None."""
    try:
        addr = ctypes.cast(getattr(ctypes.CDLL(lib), symbol), ctypes.c_void_p).value
    except (AttributeError, OSError):
        return None
    info = _DlInfo()
    libdl = ctypes.CDLL("libc.so.6")
    if not libdl.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)):
        return None
    return os.path.realpath(info.dli_fname.decode())


def openblas():
    """Verifies that torch's BLAS is OpenBLAS; returns (handle, description lines).

    Imports torch and runs one matrix product first, so that everything torch
    loads lazily is mapped. Raises NotOpenBLAS otherwise.
    """
    import torch
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))
    libs = _mapped_libraries()
    blas_like = sorted(l for l in libs if any(k in os.path.basename(l) for k in
                                              ("blas", "lapack", "blis", "atlas", "mkl")))
    ob = sorted(l for l in libs if os.path.basename(l).startswith("libopenblas"))
    lines = ["mapped: " + ", ".join(blas_like)]
    others = [l for l in blas_like if "openblas" not in l]
    if not ob:
        raise NotOpenBLAS("no libopenblas mapped in this process; mapped BLAS-like libraries: "
                          + (", ".join(blas_like) or "none"))
    if others:
        raise NotOpenBLAS("a BLAS other than OpenBLAS is mapped: " + ", ".join(others))
    # torch is built with BLAS=generic: libtorch_cpu calls the Fortran sgemm_
    # of the libblas.so.3 it was linked against. Look it up from libtorch_cpu.
    tc = sorted(l for l in libs if os.path.basename(l).startswith("libtorch_cpu"))
    if not tc:
        raise NotOpenBLAS("libtorch_cpu is not mapped: cannot tell which sgemm_ torch calls")
    sgemm = _defining_library("sgemm_", tc[0])
    lines.append(f"sgemm_ as {os.path.basename(tc[0])} resolves it: {sgemm}")
    if sgemm is None or "openblas" not in sgemm:
        raise NotOpenBLAS(f"sgemm_ resolves to {sgemm}, not OpenBLAS")
    h = ctypes.CDLL(ob[0])
    h.openblas_get_config.restype = ctypes.c_char_p
    h.openblas_get_corename.restype = ctypes.c_char_p
    lines.append(f"openblas_get_config: {h.openblas_get_config().decode()}")
    lines.append(f"openblas core: {h.openblas_get_corename().decode()}, "
                 f"threads: {h.openblas_get_num_threads()} "
                 f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
                 f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    return h, lines


def corename(h):
    return h.openblas_get_corename().decode()


def check():
    import torch
    print(f"# torch {torch.__version__}; mkldnn (oneDNN) {'on' if torch.backends.mkldnn.is_available() else 'off'}"
          " — torch runs larger 3×3 convolutions in oneDNN, the rest (LSTM, output layer, small convs) in BLAS")
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO" in line:
            info = [kv.strip() for kv in line.split(",") if "BLAS_INFO" in kv or "LAPACK_INFO" in kv]
            print("# torch build: " + ", ".join(info) + " (generic = whatever libblas.so.3 is at run time)")
    try:
        _, lines = openblas()
    except NotOpenBLAS as e:
        print(f"REFUSED: torch is not using OpenBLAS: {e}", file=sys.stderr)
        print("  fix: apt-get install libopenblas0-pthread && update-alternatives --set "
              "libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
              file=sys.stderr)
        sys.exit(3)
    for line in lines:
        print("# blas " + line)


def _best(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm(reps):
    """Best-of-reps SGEMM through numpy and torch; one line per route, shape, thread count."""
    import numpy as np
    import torch
    h, _ = openblas()
    core = corename(h)
    torch.set_num_threads(1)  # torch.mm on float32 calls sgemm_ from the main thread
    rng = np.random.default_rng(1)
    for m, n, k in SHAPES:
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        for threads in (1, 2):
            h.openblas_set_num_threads(threads)
            for route, fn in (("numpy", lambda: a @ b), ("torch", lambda: torch.mm(ta, tb))):
                sec = _best(fn, reps)
                print(f"peak {route}-sgemm {m}x{n}x{k} threads {threads} "
                      f"{2 * m * n * k / sec / 1e9:.1f} GFLOP/s core {core}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "gemm":
        gemm(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    else:
        check()
