"""Benchmark: how many Slurm jobs a run submits, with and without the rules' job groups.

Side by side, in one run, for the demo (the embedded config.yaml) and for the paper's full
plan (configs/genbench.yaml, 22 datasets):

- the dry run ``snakemake -n --profile profiles/slurm`` (the Slurm executor, the profile's
  ``group-components: [evaluate=20]``), timed;
- the same without grouping (``--group-components evaluate=1``: every evaluation its own
  job), and the count a run had before the rules had ``group:`` at all (every planned job
  but the local ones is one Slurm job);
- the dry run of a one-rule Snakefile, for the ratio "full plan / one rule" (target <= 8x).

Slurm jobs of a dry run = the top-level jobs it prints ("rule X:" at the start of a line,
except localrules and ``all``) + its group jobs ("Group job <id>"; their member jobs are
indented under them).

Run: .venv/bin/python benchmarks/slurm_jobs.py
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

from plan import timed_dry_run as dry_run  # benchmarks/plan.py: snakemake -n in a fresh temp dir

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
LOCAL_RULES = {"all", "aggregate", "summary"}
CONFIGS = {"demo": [], "full plan": ["--configfile", str(ROOT / "configs" / "genbench.yaml")]}
ONE_RULE = 'rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n'
TOP_LEVEL_RULE = re.compile(r"^(?:localrule|rule) (\w+):$", re.MULTILINE)
GROUP_JOB = re.compile(r"Group job (\S+) \(jobs in", re.MULTILINE)
MEMBER_RULE = re.compile(r"^\s+(?:localrule|rule) (\w+):$", re.MULTILINE)


def submissions(output: str) -> dict:
    """What a dry run would submit: planned jobs, jobs run locally, group jobs, Slurm jobs."""
    top = Counter(TOP_LEVEL_RULE.findall(output))
    members = Counter(MEMBER_RULE.findall(output))
    groups = GROUP_JOB.findall(output)
    planned = sum(top.values()) + sum(members.values())
    local = sum(n for rule, n in top.items() if rule in LOCAL_RULES)
    return {
        "planned": planned,
        "local": local,
        "ungrouped": planned - local,
        "slurm": sum(top.values()) - local + len(groups),
        "groups": len(groups),
        "grouped_jobs": sum(members.values()),
    }


def main() -> None:
    profile = ["--profile", str(PROFILE)]
    with tempfile.TemporaryDirectory() as tmp:
        one_rule = Path(tmp) / "Snakefile"
        one_rule.write_text(ONE_RULE)
        one_rule_s, _ = dry_run(one_rule, [])
    print(f"one-rule dry run: {one_rule_s:.1f} s")
    print("| config | planned jobs | before groups | no group-components | grouped | groups | dry run | / one rule |")
    print("|---|---|---|---|---|---|---|---|")
    snakefile = ROOT / "Snakefile"
    for name, extra in CONFIGS.items():
        seconds, grouped_out = dry_run(snakefile, [*profile, *extra])
        _, plain_out = dry_run(snakefile, [*profile, *extra, "--group-components", "evaluate=1"])
        grouped, plain = submissions(grouped_out), submissions(plain_out)
        print(
            f"| {name} | {grouped['planned']} | {grouped['ungrouped']} | {plain['slurm']} | {grouped['slurm']} "
            f"| {grouped['groups']} | {seconds:.1f} s | {seconds / one_rule_s:.1f}x |"
        )


if __name__ == "__main__":
    main()
