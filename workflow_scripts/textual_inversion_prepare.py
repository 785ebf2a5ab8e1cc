"""textual_inversion_prepare: ref_shot reference images per class, from the original train
split (seeded) or the top retrieval hits."""

from loguru import logger

from genbench.generation.references import reference_images, write_reference_index
from genbench.workflow.job import start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
original = p["source"] == "original"
index = job.input_dir("images") / ("train.jsonl" if original else "images.jsonl")
refs = reference_images(
    index,
    list(info.classes),
    p["ref_shot"],
    source="original" if original else "retrieved",
    seed=p["seed"],
    log=logger.info,
)
with job.writer() as w:
    count = write_reference_index(index, refs, w.path("references.jsonl"), final_dir=job.out_dir)
    w.summary.update(references=count, shortfall={str(k): v for k, v in refs["shortfall"].items()})
