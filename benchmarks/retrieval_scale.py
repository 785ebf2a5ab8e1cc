"""Exact retrieval over a generated pool of 1 M x 512 embeddings: seconds per streaming pass,
peak memory, one pass for every prompt vs one pass per block of prompts, and the
extrapolation to a LAION-400M-size pool.

    .venv/bin/python benchmarks/retrieval_scale.py [--rows 1000000] [--queries 1024 8192]

The pool is written in the clip-retrieval layout (``text_emb/text_emb_<shard>.npy`` float16,
``metadata/metadata_<shard>.parquet``) to a temporary folder, 100 k rows a shard; the search
is ``genbench.retrieval.search.topk_chunked`` (k = 20), which memory-maps the shards and reads
each once per pass. "Per block" is the earlier schedule: one full pass for each block of
1024 prompts. The 400 M figure scales the measured pass linearly in pool rows (not measured;
at that size the pass reads 400 GB of float16 from disk, so disk bandwidth bounds it too).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARD_ROWS = 100_000
K = 20


def write_pool(root: Path, rows: int, dim: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "text_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    rng = np.random.default_rng(0)
    for number, start in enumerate(range(0, rows, SHARD_ROWS)):
        n = min(SHARD_ROWS, rows - start)
        emb = rng.standard_normal((n, dim), dtype=np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        np.save(root / "text_emb" / f"text_emb_{number:05d}.npy", emb.astype(np.float16))
        keys = [f"{number:05d}{i:06d}" for i in range(n)]
        pq.write_table(pa.table({"key": keys, "caption": keys}), root / "metadata" / f"metadata_{number:05d}.parquet")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--chunk-rows", type=int, default=65536)
    args = parser.parse_args()
    import torch

    from genbench.retrieval.pool import open_pool
    from genbench.retrieval.search import topk_chunked

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"load average {os.getloadavg()[0]:.2f}; pool {args.rows:,} x {args.dim} float16; k = {K}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pool"
        start = time.perf_counter()
        write_pool(root, args.rows, args.dim)
        print(f"pool written in {time.perf_counter() - start:.1f} s ({args.rows * args.dim * 2 / 2**30:.2f} GiB)")
        pool = open_pool(root)
        rng = np.random.default_rng(1)
        topk_chunked(rng.standard_normal((8, args.dim)).astype(np.float32), pool, K, "text", args.chunk_rows)
        print(f"{'prompts':>8} {'one pass':>10} {'per block':>10} {'ratio':>6} {'peak RSS':>9} {'400M (extrap.)':>15}")
        for q in args.queries:
            queries = rng.standard_normal((q, args.dim)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            start = time.perf_counter()
            one = topk_chunked(queries, pool, K, "text", args.chunk_rows, query_batch=1024)
            one_pass = time.perf_counter() - start
            start = time.perf_counter()
            blocks = [topk_chunked(queries[i : i + 1024], pool, K, "text", args.chunk_rows) for i in range(0, q, 1024)]
            per_block = time.perf_counter() - start
            same = [ids for b in blocks for ids in b[1]] == one[1]
            scale = 400_000_000 / args.rows
            print(
                f"{q:8d} {one_pass:9.1f}s {per_block:9.1f}s {per_block / one_pass:5.2f}x {peak_mb():7.0f}MB "
                f"{one_pass * scale / 3600:13.1f} h" + ("" if same else "  (ids differ!)")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
