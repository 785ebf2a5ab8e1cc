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
