"""Benchmark: the dry-run cost of the paper's full plan (configs/genbench.yaml, 22 datasets).

Side by side, in one run, on the same machine and the same snakemake:

(a) ``snakemake -n --snakefile Snakefile --configfile configs/genbench.yaml`` in a fresh temp
    ``--directory`` (wall clock; the job count is parsed from the "Job stats" table);
(a') the same with ``--quiet rules`` (no per-job printout: the cost of printing 5k job blocks);
(b) the dry run of a trivial one-rule Snakefile (snakemake's fixed startup cost);
(c) ``genbench.plan.validate.validate_config`` and ``genbench.plan.build.build_plan`` alone, in-process.

Then one guarded, profiled dry run (a) in a child process: an audit hook records every socket
use, subprocess and opened model-weight/cache file (the dry run must touch none of them) and
which heavy libraries got imported; cProfile splits the time into genbench's own code (the
Snakefile/rules input functions, genbench.*) and snakemake's.

Run: .venv/bin/python benchmarks/plan.py [--repeats 1] [--top 25] [--no-profile]
Exit code 1 when the guarded dry run touched the network, a weight file or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
CONFIGFILE = ROOT / "configs" / "genbench.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
ONE_RULE = 'rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n'
WEIGHT_PATTERN = re.compile(
    r"(\.safetensors|\.ckpt|\.pt|\.pth|\.bin|\.onnx|huggingface|torch/hub|open_clip|"
    r"\.cache/clip)",
    re.IGNORECASE,
)
HEAVY_MODULES = ("torch", "open_clip", "diffusers", "transformers", "huggingface_hub", "faiss")
OUR_CODE = (str(ROOT / "genbench"), str(ROOT / "rules"), str(SNAKEFILE))


# -- timing ------------------------------------------------------------------------------
def dry_run_command(snakefile: Path, workdir: Path, extra: list[str]) -> list[str]:
    """The snakemake dry-run command line for ``snakefile`` in ``workdir``."""
    return [str(SNAKEMAKE), "-n", "--snakefile", str(snakefile), "--directory", str(workdir), *extra]


def timed_dry_run(snakefile: Path, extra: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout+stderr) of one dry run in a fresh temp directory."""
    with tempfile.TemporaryDirectory(prefix="genbench-plan-") as workdir:
        cmd = dry_run_command(snakefile, Path(workdir), extra)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def job_count(output: str) -> int:
    """The total of snakemake's "Job stats" table."""
    stats = output.split("Job stats:", 1)
    match = re.search(r"^total\s+(\d+)\s*$", stats[-1], re.MULTILINE) if len(stats) == 2 else None
    if match is None:
        raise SystemExit("no 'Job stats' total in the dry-run output")
    return int(match.group(1))


def best_of(repeats: int, fn) -> tuple[float, object]:
    """(smallest seconds, last result) over ``repeats`` calls of ``fn() -> (seconds, result)``."""
    runs = [fn() for _ in range(repeats)]
    return min(s for s, _ in runs), runs[-1][1]


def load_full_config() -> dict:
    """The config snakemake sees: embedded config.yaml updated by configs/genbench.yaml."""
    from snakemake.utils import update_config

    from genbench.core.config import load_config

    config = load_config(ROOT / "config.yaml")
    update_config(config, load_config(CONFIGFILE))
    return config


def time_build_plan(repeats: int) -> dict:
    """Seconds of validate_config and build_plan in-process: the first call (cold, as in a
    dry run: imports jsonschema, reads the schema) and the median of the rest; plan size."""
    from genbench.plan.build import build_plan
    from genbench.plan.validate import validate_config

    validate, build, plan = [], [], None
    for _ in range(repeats):
        config = load_full_config()
        start = time.perf_counter()
        validate_config(config)
        validate.append(time.perf_counter() - start)
        start = time.perf_counter()
        plan = build_plan(config)
        build.append(time.perf_counter() - start)
    return {
        "validate_s": (validate[0], statistics.median(validate[1:])),
        "build_plan_s": (build[0], statistics.median(build[1:])),
        "nodes": len(plan.nodes),
        "shards": sum(plan.shards.values()),
    }


# -- guarded, profiled child ---------------------------------------------------------------
def install_guard(events: dict) -> None:
    """Audit hook: record sockets, subprocesses and opened weight/cache files."""

    def hook(event, args):
        if event.startswith("socket.") and event not in ("socket.__new__", "socket.bind"):
            events["network"].append(f"{event} {args!r}"[:200])
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
            events["subprocess"].append(f"{event} {args!r}"[:200])
        elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if WEIGHT_PATTERN.search(path) and "site-packages" not in path:
                events["weights"].append(path)

    sys.addaudithook(hook)


def child(out_json: str, profile_path: str, workdir: str) -> None:
    """Run dry run (a) in this process under the guard and cProfile; write what was seen."""
    import cProfile

    from snakemake.cli import main as snakemake_main

    events = {"network": [], "subprocess": [], "weights": []}
    install_guard(events)
    argv = dry_run_command(SNAKEFILE, Path(workdir), ["--configfile", str(CONFIGFILE)])
    sys.argv = argv
    profiler, code = cProfile.Profile(), 0
    profiler.enable()
    try:
        snakemake_main()
    except SystemExit as exit_:
        code = exit_.code or 0
    finally:
        profiler.disable()
    profiler.dump_stats(profile_path)
    events["exit_code"] = code
    events["heavy_imports"] = sorted(m for m in HEAVY_MODULES if m in sys.modules)
    Path(out_json).write_text(json.dumps(events), encoding="utf-8")


def run_child(tmp: Path) -> tuple[dict, str]:
    """Run the guarded, profiled dry run in a child; (events, profile path)."""
    out_json, prof, workdir = tmp / "guard.json", tmp / "dryrun.prof", tmp / "work"
    workdir.mkdir()
    cmd = [sys.executable, __file__, "--child", str(out_json), str(prof), str(workdir)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if not out_json.exists():
        raise SystemExit(f"profiled dry run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out_json.read_text(encoding="utf-8")), str(prof)


# -- profile analysis ----------------------------------------------------------------------
def is_ours(filename: str) -> bool:
    return filename.startswith(OUR_CODE)


def cumulative(stats, pattern: str) -> tuple[float, int]:
    """(cumulative seconds, calls) of the profiled functions whose file:line(name) matches."""
    rows = [(v[3], v[1]) for f, v in stats.stats.items() if re.search(pattern, short_name(f))]
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def input_function_time(stats) -> tuple[float, int]:
    """(seconds, calls) of the Snakefile/rules functions that snakemake calls per job (input,
    params and resources functions), with everything they call (PLAN.get, Node.key ...)."""
    seconds, calls = 0.0, 0
    for func, (_, nc, _, cum, callers) in stats.stats.items():
        if (
            is_ours(func[0])
            and "genbench" not in func[0]
            and func[2] != "<module>"
            and not any(is_ours(c[0]) for c in callers)
        ):
            seconds, calls = seconds + cum, calls + nc
    return seconds, calls


def time_split(stats) -> dict:
    """Where the profiled dry run went: Snakefile parse (build_plan, validate_config inside
    it), genbench's per-job input functions, snakemake's DAG, its per-job printout."""
    split = {"total": stats.total_tt}
    split["parse"], _ = cumulative(stats, r"^Snakefile:1\(<module>\)$")
    split["build_plan"], _ = cumulative(stats, r"genbench/plan.py:\d+\(build_plan\)")
    split["validate_config"], _ = cumulative(stats, r"genbench/config.py:\d+\(validate_config\)")
    split["input_functions"], split["input_function_calls"] = input_function_time(stats)
    split["build_dag"], _ = cumulative(stats, r"snakemake/workflow.py:\d+\(_build_dag\)")
    split["printjob"], _ = cumulative(stats, r"snakemake/executors/dryrun.py:\d+\(printjob\)")
    split["file2jobs"], _ = cumulative(stats, r"snakemake/dag.py:\d+\(file2jobs\)")
    split["script_check"], _ = cumulative(stats, r"snakemake/script/__init__.py:\d+\(get_source\)")
    split["resources"], _ = cumulative(stats, r"snakemake/rules.py:\d+\(expand_resources\)")
    split["signature"], _ = cumulative(stats, r"snakemake/common/__init__.py:\d+\(get_function_params\)")
    return split


def top_rows(stats, top: int, predicate) -> list[str]:
    """The ``top`` functions by cumulative time that match ``predicate(filename)``."""
    rows = [(cum, nc, func) for func, (_, nc, _, cum, _) in stats.stats.items() if predicate(func[0])]
    rows.sort(reverse=True)
    return [f"  {cum:7.2f} s  {nc:>8}  {short_name(func)}" for cum, nc, func in rows[:top]]


def short_name(func) -> str:
    """file:line(function) with the site-packages / checkout prefix stripped."""
    filename, line, name = func
    filename = re.sub(r"^.*site-packages/", "", filename).replace(str(ROOT) + "/", "")
    return f"{filename}:{line}({name})"


def report_profile(events: dict, prof: str, top: int) -> bool:
    """Print the guard findings and the profile split; True when the guard is clean."""
    import pstats

    stats = pstats.Stats(prof)
    t = time_split(stats)
    total = t["total"]
    print(f"\nguarded dry run (a) under cProfile: exit {events['exit_code']}, {total:.1f} s profiled")
    for kind in ("network", "weights", "subprocess"):
        seen = events[kind]
        print(f"  {kind:<10}: {len(seen)} event(s)" + (f", e.g. {seen[:3]}" if seen else ""))
    print(f"  heavy libraries imported: {events['heavy_imports'] or 'none'}")
    ours = t["parse"] + t["input_functions"]
    rows = [
        ("genbench: Snakefile parse, all rules/*.smk", t["parse"]),
        ("  of which build_plan", t["build_plan"]),
        ("  of which validate_config", t["validate_config"]),
        (f"genbench: input functions ({t['input_function_calls']} calls)", t["input_functions"]),
        ("genbench total (parse + input functions)", ours),
        ("snakemake and the rest (imports ...)", total - ours),
        ("snakemake rows below overlap:", None),
        ("  _build_dag (incl. input functions)", t["build_dag"]),
        ("  file2jobs (input file -> producing rule)", t["file2jobs"]),
        ("  script-exists check per job (get_source)", t["script_check"]),
        ("  resources per job (expand_resources)", t["resources"]),
        ("  inspect.signature of input functions", t["signature"]),
        ("  dry-run job printout (printjob)", t["printjob"]),
    ]
    for label, seconds in rows:
        if seconds is None:
            print(f"  {label}")
        else:
            print(f"  {label:<46}: {seconds:6.2f} s  {100 * seconds / total:5.1f}%")
    print(f"\ntop {top} by cumulative time, genbench code:")
    print("\n".join(top_rows(stats, top, is_ours)))
    print(f"\ntop {top} by cumulative time, snakemake:")
    print("\n".join(top_rows(stats, top, lambda f: "site-packages/snakemake/" in f)))
    return events["exit_code"] == 0 and not events["network"] and not events["weights"]


# -- main ----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each dry run (best kept)")
    parser.add_argument("--top", type=int, default=20, help="profile rows to print")
    parser.add_argument("--no-profile", action="store_true", help="skip the guarded, profiled run")
    parser.add_argument("--child", nargs=3, metavar=("OUT_JSON", "PROFILE", "WORKDIR"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def print_timings(jobs: int, full: float, quiet: float, one: float, plan: dict) -> None:
    """The side-by-side table of the timed runs."""
    print(
        f"snakemake {snakemake_version()}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"planned jobs (Job stats total)      : {jobs}")
    print(f"plan artifacts / sample shards      : {plan['nodes']} / {plan['shards']}")
    print(f"(a)  full dry run                   : {full:7.2f} s")
    print(f"(a') full dry run, --quiet rules    : {quiet:7.2f} s")
    print(f"(b)  one-rule dry run (startup)     : {one:7.2f} s")
    for name, key in (("validate_config", "validate_s"), ("build_plan", "build_plan_s")):
        cold, warm = plan[key]
        print(f"(c)  {name + ' in-process':<31}: {cold:7.3f} s cold, {warm:.3f} s warm (median)")
    print(f"ratio full / one-rule               : {full / one:7.1f}x")
    print(
        f"per-job overhead (a-b)/jobs         : {1000 * (full - one) / jobs:7.2f} ms"
        f"  (--quiet rules: {1000 * (quiet - one) / jobs:.2f} ms)"
    )


def snakemake_version() -> str:
    import snakemake

    return snakemake.__version__


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    config_args = ["--configfile", str(CONFIGFILE)]
    full, output = best_of(args.repeats, lambda: timed_dry_run(SNAKEFILE, config_args))
    quiet, _ = best_of(args.repeats, lambda: timed_dry_run(SNAKEFILE, [*config_args, "--quiet", "rules"]))
    with tempfile.TemporaryDirectory(prefix="genbench-onerule-") as tmp:
        trivial = Path(tmp) / "Snakefile"
        trivial.write_text(ONE_RULE, encoding="utf-8")
        one, _ = best_of(args.repeats, lambda: timed_dry_run(trivial, []))
    print_timings(job_count(output), full, quiet, one, time_build_plan(max(4, args.repeats + 1)))
    if args.no_profile:
        return 0
    with tempfile.TemporaryDirectory(prefix="genbench-plan-prof-") as tmp:
        events, prof = run_child(Path(tmp))
        clean = report_profile(events, prof, args.top)
    print(f"\n{'PASS' if clean else 'FAIL'}: dry run touched no network and no weight file")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
