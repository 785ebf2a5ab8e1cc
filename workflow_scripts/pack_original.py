"""pack_original: the seeded K-shot subset of the real train split, in the ELEVATER format."""

from genbench.data.imageset import read_index
from genbench.evaluation.external import pack_records, pack_summary
from genbench.workflow.job import start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
index = job.input_dir("images") / "train.jsonl"
records = read_index(index)
shortfall = {int(c): n for c, n in job.input_manifest("images")["summary"].get("shortfall", {}).items()}
with job.writer() as w:
    pack_records(index, records, w.dir, info, k=p["k"], shortfall=shortfall, root_folder=job.out_dir.name)
    w.summary.update(pack_summary(records, info.num_classes, p["k"], shortfall))
