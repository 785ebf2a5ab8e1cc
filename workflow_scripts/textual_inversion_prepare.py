"""textual_inversion_prepare: ref_shot reference images per class, from the original train
split (seeded) or the top retrieval hits."""
import os

from loguru import logger

from genbench.data.imageset import write_index
from genbench.generation.textual_inversion import reference_images
from genbench.workflow.job import start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
name = "train.jsonl" if p["source"] == "original" else "images.jsonl"
index = job.input_dir("images") / name
refs = reference_images(index, list(info.classes), p["ref_shot"],
                        source="original" if p["source"] == "original" else "retrieved",
                        seed=p["seed"], log=logger.info)
with job.writer() as w:
    out_index = w.path("references.jsonl")
    base = os.path.dirname(out_index)
    records = []
    for class_id in sorted(refs["per_class"], key=int):
        for r in refs["per_class"][class_id]:
            path = os.path.relpath(os.path.join(index.parent, r["path"].split("@")[0]), base)
            member = "@" + r["path"].split("@", 1)[1] if "@" in r["path"] else ""
            records.append({**r, "id": f"{int(class_id):04d}-{r['id']}", "path": path + member,
                            "label": int(class_id)})
    write_index(out_index, records)
    w.summary.update(references=len(records), shortfall={str(k): v for k, v in refs["shortfall"].items()})
