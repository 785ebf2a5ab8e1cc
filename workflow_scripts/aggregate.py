"""aggregate: every evaluation's rows in one tidy table, the wide results table, correlations."""

from genbench.workflow.job import start_job
from genbench.workflow.report import collect_rows, metric_correlations, probe_column, results_table

job = start_job(snakemake)
tables = [job.input_dir(name) / "metrics.csv" for name in job.inputs_named("m")]
rows = collect_rows(tables)
protocol = job.params.get("protocol", "honest")
table = results_table(rows, protocol)
with job.writer() as w:
    rows.to_csv(w.path("rows.csv"), index=False)
    table.to_csv(w.path("summary.csv"), index=False, float_format="%.4f")
    metric_correlations(table, probe_column(protocol)).to_csv(
        w.path("correlations.csv"), index=False, float_format="%.4f"
    )
    w.summary.update(evaluations=len(tables), sets=len(table))
