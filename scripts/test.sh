#!/usr/bin/env bash
# Set up and run the test suite. As root, it also starts a one-node Slurm cluster on
# localhost (Debian's slurm packages, installed if missing) so the Slurm tests run for real,
# and stops it afterwards. GENBENCH_SKIP_SLURM=1 skips that (the Slurm tests then skip).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"   # Slurm jobs inherit this environment
if [ "${GENBENCH_SKIP_SLURM:-0}" != "1" ]; then
    eval "$(bash scripts/slurm/start_cluster.sh --print-env)"
    trap 'bash scripts/slurm/stop_cluster.sh' EXIT
fi
python -m pytest -q "$@"
