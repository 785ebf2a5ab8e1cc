"""textual_inversion_prepare: ref_shot reference images per class (textual inversion's or
img2img's), from the original train split (seeded, none from val or test) or the top retrieval hits."""

from loguru import logger

from genbench.injection.references import (
    ReferenceParams,
    check_not_held_out,
    reference_images,
    write_reference_index,
)
from genbench.workflow.job import start_job

job = start_job(snakemake)
params = job.stage_params(ReferenceParams)
info = job.dataset_info()
original = params.source == "original"
index = job.input_dir("images") / ("train.jsonl" if original else "images.jsonl")
refs = reference_images(
    index,
    list(info.classes),
    params.ref_shot,
    source="original" if original else "retrieved",
    seed=params.seed,
    log=logger.info,
)
if original:
    check_not_held_out(refs, job.input_dir("prepare"))
with job.writer() as w:
    count = write_reference_index(index, refs, w.path("references.jsonl"), final_dir=job.out_dir)
    w.summary.update(references=count, shortfall={str(k): v for k, v in refs["shortfall"].items()})
