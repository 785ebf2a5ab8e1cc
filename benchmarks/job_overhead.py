"""Benchmark: what a workflow job pays for its imports before it does any work.

Every Snakemake job is a fresh Python process. For each script in ``workflow_scripts/`` this
runs the script's top-level imports in a new interpreter and times the whole process, side by
side with a bare ``python -c "import numpy, pandas"`` (interleaved, median of ``--repeats``
runs each), and lists the heavy packages (torch, open_clip, diffusers, transformers, sklearn)
those imports pull in. The policy of which script may load what is
``genbench.workflow.job_kinds.SCRIPT_KINDS``.

Target: a script whose kind uses no heavy package starts in <= 1.5x the bare figure. Prints a
table, then PASS or FAIL; exit 1 on FAIL.

Run: .venv/bin/python benchmarks/job_overhead.py [--repeats 5] [--script NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genbench.workflow.job_kinds import SCRIPT_KINDS, script_imports  # noqa: E402

BARE = "import numpy, pandas"
TARGET_RATIO = 1.5


def run_once(code: str) -> tuple[float, str]:
    """Wall seconds of ``python -c code`` and the heavy packages it loaded."""
    probe = f"{code}\nfrom genbench.workflow.job_kinds import loaded_line\nprint(loaded_line())"
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout
    return time.perf_counter() - started, out.strip().splitlines()[-1].split(":", 1)[1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--script", nargs="*", help="only these scripts (names without .py)")
    args = parser.parse_args()
    names = args.script or sorted(SCRIPT_KINDS)
    codes = {name: script_imports(ROOT / "workflow_scripts" / f"{name}.py") for name in names}
    bare, times, loaded = [], {name: [] for name in names}, {}
    run_once(BARE)  # warm the file cache once
    for _ in range(args.repeats):  # interleaved: the baseline sees the same load as every script
        bare.append(run_once(BARE)[0])
        for name in names:
            seconds, loaded[name] = run_once(codes[name])
            times[name].append(seconds)
    base = statistics.median(bare)
    print(f'load average {os.getloadavg()[0]:.2f}; bare `python -c "{BARE}"`: {base:.2f} s (median of {len(bare)})')
    print(f"{'script':28} {'kind':7} {'s':>6} {'x bare':>7}  heavy packages")
    failed = []
    for name in names:
        kind = SCRIPT_KINDS[name]
        median = statistics.median(times[name])
        ratio = median / base
        over = not kind.uses and ratio > TARGET_RATIO
        failed += [name] if over else []
        print(f"{name:28} {kind.name:7} {median:6.2f} {ratio:7.2f}  {loaded[name]}{'  <- over target' if over else ''}")
    light = [statistics.median(times[n]) / base for n in names if not SCRIPT_KINDS[n].uses]
    if light:
        print(f"light scripts: median {statistics.median(light):.2f}x bare, worst {max(light):.2f}x")
    verdict = "FAIL" if failed else "PASS"
    detail = f" ({', '.join(failed)})" if failed else ""
    print(f"{verdict} job_overhead: light scripts start in <= {TARGET_RATIO}x bare{detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
