"""distribution_metrics: FD, KID, precision/recall/density/coverage, Vendi, CMMD and CLIP score."""

from loguru import logger

from genbench.evaluation.evaluate import distribution_metrics, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake)
inputs = evaluation_inputs(job)
p = job.params
device = p.get("device", "cpu")
if device != "cpu":  # the quadratic metrics as torch kernels on the GPU
    job.use_torch()
values = distribution_metrics(
    inputs,
    p["metrics"],
    {"kid": p.get("kid", {})},
    max_images=p.get("max_images"),
    device=None if device == "cpu" else device,
)
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "distribution_metrics", values))
