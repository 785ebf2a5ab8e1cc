"""pack_retrieval: K images per class of a retrieved set (top-K by CLIP score or retrieval
similarity, or seeded random), in the ELEVATER format."""

from loguru import logger

from genbench.evaluation.external import RetrievedPackParams, pack_external_set
from genbench.workflow.job import selection_inputs, start_job

job = start_job(snakemake)
features, text_classifier = selection_inputs(job)
with job.writer() as w:
    summary = pack_external_set(
        job.input_dir("images") / "images.jsonl",
        w.dir,
        job.stage_params(RetrievedPackParams),
        job.dataset_info(),
        root_folder=job.out_dir.name,
        features=features,
        text_classifier=text_classifier,
        log=logger.warning,
    )
    w.summary.update(summary)
