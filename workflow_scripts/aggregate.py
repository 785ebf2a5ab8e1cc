"""aggregate: every evaluation's rows in one tidy table, the wide results table, correlations,
scaling curves, break-even points and combined sets' gains."""

from genbench.report.correlations import correlation_table
from genbench.report.scaling import scaling_report
from genbench.report.tables import AggregateParams, collect_rows, probe_column, results_table
from genbench.workflow.job import start_job

job = start_job(snakemake)
params = job.stage_params(AggregateParams)
# the evaluations are inputs m00000, m00001, ... (names in every aggregate key)
tables = [job.input_dir(name) / "metrics.csv" for name in job.inputs_named("m")]
rows = collect_rows(tables)
table = results_table(rows, params.protocol)
with job.writer() as w:
    rows.to_csv(w.path("rows.csv"), index=False)
    table.to_csv(w.path("summary.csv"), index=False, float_format="%.4f")
    probe = probe_column(params.protocol)
    correlation_table(table, probe).to_csv(w.path("correlations.csv"), index=False, float_format="%.4f")
    for name, frame in scaling_report(table, probe).items():
        frame.to_csv(w.path(name), index=False, float_format="%.4f")
    w.summary.update(evaluations=len(tables), sets=len(table))
