"""prepare: the real train/val/test splits in the canonical image-set form."""

from loguru import logger

from genbench.data.prepare import prepare_dataset
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake)
p = job.params
source = dict(p["source"])
root = job.runtime["root"]
if source.get("type") == "torchvision":
    job.use_torch()
if root:
    if p["data"]["kind"] not in ("package", "download"):  # what the plan fingerprinted, still
        check_input_unchanged(root, p["data"], job.cache)
    source["root"] = source["path"] = root
with job.writer() as w:
    summary = prepare_dataset(
        job.dataset_info(),
        source,
        w.dir,
        seed=p["seed"],
        test_fraction=p["test_fraction"],
        max_bad_fraction=p["max_bad_fraction"],
        download=p["download"],
        log=logger.info,
    )
    w.summary.update(summary)
