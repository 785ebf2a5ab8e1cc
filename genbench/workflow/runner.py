"""The snakemake command line that GenBench's own commands run (this checkout's Snakefile)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def snakemake_command(extra: list[str], profile: str | None, configfiles: list[str]) -> list[str]:
    """The snakemake command line GenBench runs (from the repository's Snakefile)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]
    if profile:
        cmd += ["--profile", profile]
    else:
        cmd += ["--cores", str(os.cpu_count() or 1)]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    return cmd + extra


# Snakemake invocations that plan or describe without running a job or touching the results
READ_ONLY_FLAGS = {
    "--dry-run",
    "--dryrun",
    "--unlock",
    "--summary",
    "--detailed-summary",
    "--list",
    "--list-rules",
    "--list-target-rules",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--report",
    "--lint",
    "--cleanup-metadata",
    "--list-changes",
}
READ_ONLY_SHORT = set("nlSD")  # -n (dry run), -l (list), -S / -D (summaries)


def reads_only(argv: list[str]) -> bool:
    """Whether a snakemake command line only plans or describes (a dry run, ``--unlock``,
    ``--summary``, ``--dag``, ``--report``, ...): then GenBench checks the results folder
    but takes no lock and removes nothing. Short flags may be combined (``-np``)."""
    for arg in argv[1:]:
        name = arg.split("=", 1)[0]
        if name in READ_ONLY_FLAGS:
            return True
        if arg.startswith("-") and not arg.startswith("--") and READ_ONLY_SHORT & set(arg[1:]):
            return True
    return False
