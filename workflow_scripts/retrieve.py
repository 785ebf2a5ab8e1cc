"""retrieve: per class, search the pool with every template-filled prompt, remove the copies of
val and test images, and keep the top K by mean similarity; the retrieved images become an
image set like a generated one."""

import json

from loguru import logger

from genbench.evaluation.encoders import load_encoder
from genbench.retrieval.decontaminate import load_held_out
from genbench.retrieval.pool import open_pool
from genbench.retrieval.search import RetrievalParams, retrieve_images, write_retrieved_set
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake, torch=True)
params = job.stage_params(RetrievalParams)
info = job.dataset_info()
if job.has_input("pool"):
    pool = open_pool(job.input_dir("pool"))
else:  # a pool folder of the user's: it must still be what the plan fingerprinted
    pool = open_pool(check_input_unchanged(job.runtime["pool"], job.params["pool"], job.cache))
encoder = load_encoder(job.encoder_spec(), device=params.device)
held_out = load_held_out(job.input_dir("prepare"), {s: job.input_dir(f"held_out_{s}") for s in job.held_out_splits()})
results = retrieve_images(info.classes, info.templates, encoder, pool, params, held_out=held_out, log=logger.info)
with job.writer() as w:
    summary = write_retrieved_set(results, pool, w.dir, class_names=list(info.classes))
    with open(w.path("retrieval.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    w.summary.update(
        images=summary["images"],
        shortfall=summary["shortfall"],
        conflicts=len(summary["conflicts"]),
        decontaminated=len(results["decontamination"]["removed"]),
        decontaminated_per_class=results["decontamination"]["removed_per_class"],
    )
