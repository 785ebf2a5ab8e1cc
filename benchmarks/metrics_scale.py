"""The distribution metrics' cost: against one Gram matmul at 20 k vs 10 k, and against n.

    .venv/bin/python benchmarks/metrics_scale.py --gram [--real 20000 --generated 10000] [--threads 2]
    .venv/bin/python benchmarks/metrics_scale.py [--sizes 1000 2000 4000] [--dim 512]

``--gram``: in one process, one R R^T matmul of the real features (float64, N x N, the unit
of cost), then the distribution stage's metrics (FD, KID, PRDC, Vendi, CMMD; PRDC, CMMD and
KID from their shared Gram pass) on the same threads, each metric's time as a multiple of the
matmul, and the numbers against the numpy references of tests/reference_metrics.py (equal to
1e-6). Target: the whole stage in at most 3x one Gram matmul (PASS/FAIL, exit 1 on FAIL).

Without it: each (metric, backend, n) runs in its own subprocess (n external vs n real
features, seeded), so its peak RSS above the process's baseline is its own. Backends: torch
on CPU, and torch on CUDA when a GPU is visible. The growth exponent is the
least-squares slope of log(time) on log(n); extrapolations use it from the largest measured n
and are printed as such; the exponent used is never below the algorithm's (2 for PRDC and
CMMD, 1 for FD, Vendi and PAD; KID and pad_dann are fixed-size). The capped figure is the
stage at metrics.max_images = 50000 per set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

METRICS = ("fd", "kid", "prdc", "vendi", "cmmd", "pad", "pad_dann")
QUADRATIC = ("prdc", "cmmd")
IMAGENET = (500_000, 50_000)
CAP = 50_000

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
metric, backend, n, dim, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
from genbench.evaluation.metrics import compute_distribution_metrics
rng = np.random.default_rng(0)
ext = rng.normal(size=(n, dim)).astype(np.float32)
real = (rng.normal(size=(n, dim)) + 0.1).astype(np.float32)
device = backend.split(":", 1)[1]
params = {"kid": {"num_subsets": 100, "subset_size": 1000}}.get(metric, {})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
compute_distribution_metrics([metric], ext, real, {metric: params} if params else None, device=device)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
print(json.dumps({"seconds": seconds, "peak_mb": peak, "gpu_mb": gpu}))
"""


def measure(metric: str, backend: str, n: int, dim: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, metric, backend, str(n), str(dim), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def growth(sizes, seconds) -> float:
    """Least-squares slope of log(seconds) against log(n)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


FIXED = ("kid", "pad_dann")  # fixed-size subsets (KID) or a fixed cap (pad_dann's 1000 per set)


def used_exponent(metric: str, fitted: float) -> float:
    """The growth used to extrapolate: the fitted one, but never below what the algorithm does
    (2 for all-pairs metrics, 1 for the others), since small n is dominated by fixed costs."""
    if metric in FIXED:
        return 0.0
    return max(fitted, 2.0 if metric in QUADRATIC else 1.0)


def extrapolate(metric: str, n: int, seconds: float, exponent: float, sizes: tuple[int, int]) -> float:
    """Seconds at (n_external, n_real) = ``sizes``, from ``seconds`` at n vs n with
    ``used_exponent``. All-pairs metrics scale with their pair count n_e^2 + n_r^2 + n_e n_r
    (raised to exponent / 2); the others with the larger set; KID and pad_dann are fixed."""
    n_e, n_r = sizes
    exponent = used_exponent(metric, exponent)
    if exponent == 0.0:
        return seconds
    if metric in QUADRATIC:
        return seconds * ((n_e**2 + n_r**2 + n_e * n_r) / (3 * n**2)) ** (exponent / 2)
    return seconds * (max(n_e, n_r) / n) ** exponent


TARGET = 3.0  # the stage in at most this many Gram matmuls


def against_gram(args) -> int:
    """The distribution stage's metrics at --real vs --generated, in Gram matmuls."""
    import time

    import torch

    from genbench.evaluation.metrics import compute_distribution_metrics

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(args.real, args.dim)).astype(np.float32)
    generated = (rng.normal(size=(args.generated, args.dim)) * 1.1 + 0.05).astype(np.float32)
    kid = {"num_subsets": 100, "subset_size": 1000}
    x = torch.as_tensor(real, dtype=torch.float64)
    (x[:256] @ x[:256].T).sum()  # warm-up
    start = time.perf_counter()
    (x @ x.T).sum()
    gram = time.perf_counter() - start
    del x
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.real} real vs {args.generated} generated, d = {args.dim}; "
        f"{args.threads} thread(s)"
    )
    print(f"one {args.real} x {args.real} Gram matmul (float64): {gram:.2f} s")
    timings, values = {}, {}
    for label, names in (
        ("fd", ["fd"]),
        ("vendi", ["vendi"]),
        ("prdc + cmmd + kid (one pass)", ["prdc", "cmmd", "kid"]),
    ):
        start = time.perf_counter()
        values.update(compute_distribution_metrics(names, generated, real, {"kid": kid} if "kid" in names else None))
        timings[label] = time.perf_counter() - start
    for label, seconds in timings.items():
        print(f"  {label:30} {seconds:7.2f} s  {seconds / gram:5.2f}x")
    total = sum(timings.values())
    ratio = total / gram
    print(f"  {'stage':30} {total:7.2f} s  {ratio:5.2f}x  (target <= {TARGET:g}x)")
    same = True
    if not args.no_check:
        same = _same_as_references(generated, real, kid, values)
    verdict = "PASS" if ratio <= TARGET and same else "FAIL"
    print(
        f"{verdict}: the distribution metrics cost {ratio:.2f} Gram matmuls"
        + ("" if args.no_check else f"; numbers {'equal' if same else 'NOT equal'} to the references to 1e-6")
    )
    return 0 if verdict == "PASS" else 1


def _same_as_references(generated, real, kid, values) -> bool:
    """The numpy references of tests/reference_metrics.py on the same features, to 1e-6."""
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import reference_metrics as ref

    start = time.perf_counter()
    expected = {f"prdc_{k}": v for k, v in ref.precision_recall_density_coverage(real, generated).items()}
    expected["cmmd"] = ref.cmmd(generated, real)
    expected.update(ref.kernel_inception_distance(generated, real, **kid))
    expected["vendi"], expected["vendi_real"] = ref.vendi_score(generated), ref.vendi_score(real)
    print(f"numpy references: {time.perf_counter() - start:.1f} s")
    worst = max(abs(values[k] - v) / max(abs(v), 1e-12) for k, v in expected.items())
    print(f"largest relative difference from the references: {worst:.1e}")
    return worst <= 1e-6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--gram", action="store_true", help="the stage against one Gram matmul (see above)")
    parser.add_argument("--real", type=int, default=20_000)
    parser.add_argument("--generated", type=int, default=10_000)
    parser.add_argument("--no-check", action="store_true", help="skip the numpy references (slow)")
    args = parser.parse_args()
    import torch

    if args.gram:
        return against_gram(args)
    backends = ["torch:cpu"] + (["torch:cuda"] if torch.cuda.is_available() else [])
    print(f"load average {os.getloadavg()[0]:.2f}; d = {args.dim}; {args.threads} thread(s); backends {backends}")
    if not torch.cuda.is_available():
        print("no GPU visible: the torch:cuda column is not measured")
    print(f"{'metric':9} {'backend':10} " + " ".join(f"{'n=' + str(n):>14}" for n in args.sizes) + "  growth")
    extrapolations = []
    for metric in args.metrics:
        for backend in backends:
            runs = [measure(metric, backend, n, args.dim, args.threads) for n in args.sizes]
            seconds = [r["seconds"] for r in runs]
            exponent = growth(args.sizes, seconds) if len(args.sizes) > 1 else float("nan")
            cells = " ".join(f"{r['seconds']:7.2f}s {r['peak_mb']:4.0f}MB" for r in runs)
            print(f"{metric:9} {backend:10} {cells}  n^{exponent:.2f} (used n^{used_exponent(metric, exponent):.2f})")
            n, t = args.sizes[-1], seconds[-1]
            extrapolations.append(
                (
                    metric,
                    backend,
                    extrapolate(metric, n, t, exponent, IMAGENET),
                    extrapolate(metric, n, t, exponent, (CAP, CAP)),
                )
            )
    print("\nExtrapolated from the largest n (not measured), one process with the threads above:")
    print(f"{'metric':9} {'backend':10} {'500k vs 50k':>14} {'capped 50k vs 50k':>18}")
    table = {}
    for metric, backend, full, capped in extrapolations:
        print(f"{metric:9} {backend:10} {full / 60:12.1f}min {capped / 60:16.1f}min")
        table[(metric, backend)] = (full, capped)
    for backend in backends:  # the stage: this backend's kernels where it has one, numpy's otherwise
        parts = [table[(m, backend)] for m in args.metrics]
        full, capped = sum(p[0] for p in parts), sum(p[1] for p in parts)
        print(f"stage total with {backend:10}: {full / 3600:8.2f} h uncapped, {capped / 60:8.1f} min capped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
