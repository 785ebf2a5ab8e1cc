#!/usr/bin/env bash
# Lint and format checks (as CI runs them): ruff, ruff format and snakefmt, all from .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/snakefmt --check Snakefile rules/ tests/slurm_toy/Snakefile
