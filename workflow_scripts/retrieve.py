"""retrieve: per class, search the pool with every template-filled prompt and keep the top K
by mean similarity; the retrieved images become an image set like a generated one."""

import json

from loguru import logger

from genbench.evaluation.encoders import load_encoder
from genbench.retrieval.pool import faiss_index_path, open_pool
from genbench.retrieval.search import retrieve_for_classes, write_retrieved_set
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake, torch=True)
p = job.params
info = job.dataset_info()
if job.has_input("pool"):
    pool = open_pool(job.input_dir("pool"))
else:  # a pool folder of the user's: it must still be what the plan fingerprinted
    pool = open_pool(check_input_unchanged(job.runtime["pool"], p["pool"], job.cache))
encoder = load_encoder(job.encoder_spec(), device=p["device"])
index_path = faiss_index_path(pool, p["kind"]) if p.get("index") == "faiss" else None
results = retrieve_for_classes(
    list(info.classes),
    list(info.templates),
    encoder,
    pool,
    k_per_prompt=p["k_per_prompt"],
    k_per_class=p["k_per_class"],
    kind=p["kind"],
    on_conflict=p["on_conflict"],
    index_path=index_path,
    log=logger.info,
)
with job.writer() as w:
    summary = write_retrieved_set(results, pool, w.dir, class_names=list(info.classes))
    with open(w.path("retrieval.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    w.summary.update(images=summary["images"], shortfall=summary["shortfall"], conflicts=len(summary["conflicts"]))
