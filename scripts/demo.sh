#!/usr/bin/env bash
# Set up and run the main job: the whole benchmark on the CPU demo (config.yaml), then verify
# every artifact. No network, no downloaded weights. Extra arguments go to snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
set_up=$(date +%s)
.venv/bin/snakemake --profile profiles/local "$@"
finished=$(date +%s)
.venv/bin/genbench verify results
cat results/report/findings.txt
minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
total=$((finished - started))
verdict=$([ "$total" -le 900 ] && echo PASS || echo FAIL)
echo "$verdict demo: $(minutes $total) in all (target <= 15 minutes): set-up $(minutes $((set_up - started))), workflow $(minutes $((finished - set_up)))"
echo "Done: results/summary.csv, results/report/ (snakemake --report report.html for the HTML report)"
