#!/usr/bin/env bash
# Create .venv in the checkout and install GenBench with its test extras (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch/torchvision pinned to the releases this project is tested with (<= 2.14.1 / 0.29.1).
.venv/bin/python -m pip install --quiet 'torch==2.14.1' 'torchvision==0.29.1'
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/genbench --help > /dev/null
# `snakemake --profile slurm` (and `local`) by name: link them where Snakemake looks for named
# profiles; a profile of that name you already have is kept (and said so).
.venv/bin/genbench install-profiles
echo "GenBench installed in $(pwd)/.venv"
