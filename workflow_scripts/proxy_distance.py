"""proxy_distance: the proxy-A distance between the external set and the real test images."""

from loguru import logger

from genbench.evaluation.evaluate import proxy_distance, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake)
inputs = evaluation_inputs(job)
pad = job.params["pad"]
values = proxy_distance(inputs, seed=pad.get("seed", 0), dann_max_images=pad.get("dann_max_images", 1000))
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "proxy_distance", values))
