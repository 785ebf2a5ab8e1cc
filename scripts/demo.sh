#!/usr/bin/env bash
# Set up and run the main job: the whole benchmark on the CPU demo (config.yaml), then verify
# every artifact. No network, no downloaded weights. Extra arguments go to snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/snakemake --profile profiles/local "$@"
.venv/bin/genbench verify results
cat results/report/findings.txt
echo "Done: results/summary.csv, results/report/ (snakemake --report report.html for the HTML report)"
