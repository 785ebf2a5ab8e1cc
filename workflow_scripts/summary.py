"""summary: stable-path views of the latest aggregate for people and `snakemake --report`:
results/summary.csv, correlations, scatter plots, gain bars, scaling curves (with the break-even
and combined-gain tables) and sample image grids."""

import shutil
from pathlib import Path

import pandas as pd
from loguru import logger

from genbench.report.findings import study_findings, training_times
from genbench.report.plots import image_grid, plot_correlations, plot_gain
from genbench.report.scaling import plot_scaling
from genbench.report.tables import probe_column
from genbench.workflow.job import setup_logging
from genbench.workflow.tracking import maybe_log_results

setup_logging(snakemake)
aggregate = Path(snakemake.input.aggregate[0]).parent
out = snakemake.output
shutil.copyfile(aggregate / "summary.csv", out.summary)
shutil.copyfile(aggregate / "correlations.csv", out.correlations)
for name in ("scaling.csv", "break_even.csv", "combined_gain.csv"):
    shutil.copyfile(aggregate / name, Path(out.correlations).parent / name)
table = pd.read_csv(aggregate / "summary.csv", keep_default_na=False, na_values=[""])
correlations = pd.read_csv(aggregate / "correlations.csv")
probe = probe_column(snakemake.params.run_config.get("protocol", "honest"))
plot_correlations(table, correlations, out.correlation_plot, probe)
training = training_times(snakemake.params.training_jobs)
findings = study_findings(table, correlations, probe, training, targets=snakemake.params.targets)
Path(out.findings).write_text("\n".join(findings) + "\n", encoding="utf-8")
for line in findings:
    logger.info(line)
plot_gain(table, out.gain_plot)
plot_scaling(pd.read_csv(aggregate / "scaling.csv", keep_default_na=False, na_values=[""]), out.scaling_plot)
Path(out.grids).mkdir(parents=True, exist_ok=True)
for manifest, label in zip(snakemake.input.samples, snakemake.params.sample_labels):
    image_grid(Path(manifest).parent / "images.jsonl", Path(out.grids) / f"{label}.png", title=label)
maybe_log_results(
    snakemake.params.run_config, out.summary, out.correlations, directory=str(Path(out.summary).parent / "report")
)
