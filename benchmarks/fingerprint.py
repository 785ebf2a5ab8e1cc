"""Benchmark: what content addressing costs - input fingerprints and the checks of inputs.

Side by side, in one run:

(a) a generated tree of ImageNet's shape (class folders of JPEG-sized files): the first
    fingerprint (every file read and hashed), the warm one (a stat walk answered by the stat
    cache), and the one after ``touch`` of every file (re-read, same digest); seconds per file
    and per GB, extrapolated to ImageNet-1k's train split (1,281,167 files, ~140 GB).
(b) one big file (a stand-in for an ELEVATER zip): hashing throughput (GB/s) cold vs the
    stat-cache hit.
(c) with ``--results DIR`` (a finished demo): checking every artifact the way jobs check their
    inputs (``check_artifact`` through the stat cache) vs ``genbench verify`` (re-read all),
    with the bytes involved.

Run: .venv/bin/python benchmarks/fingerprint.py [--files 20000] [--file-kb 110] [--big-mb 512]
     [--results results]
The tree is written under a temp folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genbench.core.artifacts import check_artifact, find_artifacts, verify_tree  # noqa: E402
from genbench.core.fingerprint import StatCache, fingerprint_path  # noqa: E402

IMAGENET_FILES = 1_281_167
IMAGENET_GB = 140.0


def make_tree(root: Path, files: int, file_kb: int, classes: int = 1000) -> int:
    payload = os.urandom(file_kb * 1024)
    for i in range(files):
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img_{i:08d}.JPEG").write_bytes(payload[: file_kb * 1024 - (i % 97)])
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_tree(tmp: Path, files: int, file_kb: int) -> None:
    root = tmp / "tree"
    total = make_tree(root, files, file_kb)
    gb = total / 1e9
    print(f"(a) tree: {files} files in 1000 class folders, {gb:.2f} GB")
    cold_cache = StatCache(tmp / "tree-cache.sqlite")
    first, cold = timed(lambda: fingerprint_path(root, cold_cache))
    warm_cache = StatCache(tmp / "tree-cache.sqlite")  # a new process: cache read from disk
    second, warm = timed(lambda: fingerprint_path(root, warm_cache))
    assert first == second and warm_cache.hashed_files == 0
    for path in root.rglob("*.JPEG"):
        os.utime(path)
    touched_cache = StatCache(tmp / "tree-cache.sqlite")
    third, touched = timed(lambda: fingerprint_path(root, touched_cache))
    assert third["sha256"] == first["sha256"]
    rows = [("first (hash everything)", cold), ("warm (stat walk, cached)", warm), ("after touch (re-hash)", touched)]
    print(f"  {'case':<26} {'seconds':>9} {'us/file':>9} {'s/GB':>8} {'ImageNet (extrapolated)':>26}")
    for name, seconds in rows:
        per_file = seconds / files
        per_gb = seconds / gb
        # hashing cost scales with bytes, a stat walk with files
        projected = per_gb * IMAGENET_GB if "warm" not in name else per_file * IMAGENET_FILES
        print(f"  {name:<26} {seconds:9.2f} {per_file * 1e6:9.1f} {per_gb:8.2f} {projected / 60:22.1f} min")
    print(f"  warm / first: {warm / cold:.3f}")


def bench_big_file(tmp: Path, big_mb: int) -> None:
    path = tmp / "big.zip"
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(big_mb):
            f.write(block)
    cache = StatCache(tmp / "big-cache.sqlite")
    _, cold = timed(lambda: fingerprint_path(path, cache))
    _, warm = timed(lambda: fingerprint_path(path, StatCache(tmp / "big-cache.sqlite")))
    gb = big_mb / 1024
    print(
        f"(b) one {big_mb} MB file: first {cold:.2f} s ({gb / cold:.2f} GB/s), cached {warm * 1e3:.2f} ms "
        f"-> a 150 GB zip: {150 / (gb / cold) / 60:.1f} min once, then {warm * 1e3:.2f} ms per check"
    )


def bench_results(results: Path, tmp: Path) -> None:
    folders = find_artifacts(results)
    total = sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file())
    cache = StatCache(tmp / "results-cache.sqlite")
    _, first = timed(lambda: [check_artifact(f, None, cache) for f in folders])
    _, again = timed(lambda: [check_artifact(f, None, StatCache(tmp / "results-cache.sqlite")) for f in folders])
    (_, problems), full = timed(lambda: verify_tree(results))
    gb = total / 1e9
    print(f"(c) {len(folders)} artifacts, {gb * 1e3:.1f} MB under {results}:")
    print(
        f"  job-side checks, cold cache: {first:.2f} s ({first / gb:.1f} s/GB); warm cache: {again:.3f} s "
        f"({again / len(folders) * 1e3:.2f} ms per artifact); genbench verify (re-read): {full:.2f} s; "
        f"{len(problems)} problem(s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--file-kb", type=int, default=110, help="ImageNet's mean JPEG is about 110 KB")
    parser.add_argument("--big-mb", type=int, default=512)
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="genbench-fingerprint-"))
    try:
        bench_tree(tmp, args.files, args.file_kb)
        bench_big_file(tmp, args.big_mb)
        if args.results:
            bench_results(args.results, tmp)
    finally:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
