"""pack_generated / pack_retrieval: K images per class of a generated or retrieved set
(top-K by CLIP score or retrieval similarity, or seeded random), in the ELEVATER format."""

import numpy as np
from loguru import logger

from genbench.data.fewshot import check_shortfall
from genbench.data.imageset import read_index
from genbench.evaluation.external import pack_records, pack_summary, select_records
from genbench.evaluation.features import load_features
from genbench.workflow.job import start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
index = job.input_dir("images") / "images.jsonl"
records = read_index(index)
ranked_by_clip = job.has_input("features")
chosen, counts, shortfall = select_records(
    records,
    p["k"],
    p["selection"],
    p["seed"],
    info.num_classes,
    features=load_features(job.input_dir("features")) if ranked_by_clip else None,
    text_classifier=np.load(job.input_dir("text_classifier") / "text_classifier.npy") if ranked_by_clip else None,
)
check_shortfall(
    shortfall,
    p["k"],
    info.classes,
    job.runtime["on_shortfall"],
    f"{snakemake.rule} {info.name} k={p['k']}",
    log=logger.warning,
)
with job.writer() as w:
    pack_records(index, chosen, w.dir, info, k=p["k"], shortfall=shortfall, root_folder=job.out_dir.name)
    w.summary.update(pack_summary(chosen, info.num_classes, p["k"], shortfall))
