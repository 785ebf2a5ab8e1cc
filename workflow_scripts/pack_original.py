"""pack_original: the seeded K-shot subset of the real train split, in the ELEVATER format."""

from genbench.evaluation.external import OriginalPackParams, pack_original_subset
from genbench.workflow.job import start_job

job = start_job(snakemake)
shortfall = {int(c): n for c, n in job.input_manifest("images")["summary"].get("shortfall", {}).items()}
with job.writer() as w:
    summary = pack_original_subset(
        job.input_dir("images") / "train.jsonl",
        w.dir,
        job.stage_params(OriginalPackParams),
        job.dataset_info(),
        shortfall=shortfall,
        root_folder=job.out_dir.name,
    )
    w.summary.update(summary)
