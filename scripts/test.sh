#!/usr/bin/env bash
# Set up and run the test suite. Starts a one-node Slurm cluster on localhost for the Slurm
# tests (root and Debian's packages needed; set GENBENCH_SKIP_SLURM=1 to skip them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${GENBENCH_SKIP_SLURM:-0}" != "1" ]; then
    eval "$(bash scripts/slurm/start_cluster.sh | grep '^export ')"
    trap 'bash scripts/slurm/stop_cluster.sh' EXIT
fi
.venv/bin/python -m pytest -q "$@"
