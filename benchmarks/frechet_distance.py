"""Benchmark: our Frechet distance against a scipy.linalg.sqrtm reference, one thread.

d = 2048, n = 5000 seeded random correlated features per set. Prints both values, their
relative difference (must be < 1e-6, else exit code 1) and the speed ratio (target >= 8x).
Run: .venv/bin/python benchmarks/frechet_distance.py
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # must happen before numpy is imported

import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.linalg import sqrtm  # noqa: E402

from genbench.evaluation.metrics.frechet import feature_statistics, frechet_distance  # noqa: E402

DIM, SAMPLES, SEED = 2048, 5000, 0
MAX_RELATIVE_DIFFERENCE, TARGET_SPEEDUP = 1e-6, 8.0


def random_features(rng, shift):
    """Correlated Gaussian features: z @ M / sqrt(d) + shift, z standard normal."""
    mixing = rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    return rng.normal(size=(SAMPLES, DIM)) @ mixing + shift


def sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2):
    """Textbook reference: tr of the real part of scipy sqrtm(S1 S2) (scipy < 1.18 signature)."""
    covmean = np.real(sqrtm(sigma1 @ sigma2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def timed(fn, *args):
    """(value, wall seconds, CPU seconds of this process). With one thread the CPU time is
    the fair measure on a shared machine; wall time also counts waiting for a core."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main():
    rng = np.random.default_rng(SEED)
    stats = (*feature_statistics(random_features(rng, 0.0)), *feature_statistics(random_features(rng, 0.1)))
    ours, ours_wall, ours_cpu = timed(frechet_distance, *stats)
    reference, ref_wall, ref_cpu = timed(sqrtm_frechet_distance, *stats)
    relative = abs(ours - reference) / abs(reference)
    print(f"d={DIM} n={SAMPLES} threads=1")
    print(f"frechet_distance (ours): {ours:.10f}  wall {ours_wall:.2f} s, cpu {ours_cpu:.2f} s")
    print(f"scipy sqrtm reference  : {reference:.10f}  wall {ref_wall:.2f} s, cpu {ref_cpu:.2f} s")
    print(f"relative difference    : {relative:.3e} (must be < {MAX_RELATIVE_DIFFERENCE:g})")
    print(
        f"speed ratio            : cpu {ref_cpu / ours_cpu:.1f}x,"
        f" wall {ref_wall / ours_wall:.1f}x"
        f" (target >= {TARGET_SPEEDUP:g}x)"
    )
    return 0 if relative < MAX_RELATIVE_DIFFERENCE else 1


if __name__ == "__main__":
    sys.exit(main())
