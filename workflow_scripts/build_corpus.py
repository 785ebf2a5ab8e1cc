"""build_corpus: the "web" corpus of printed digits, in the img2dataset layout."""

from genbench.data.corpus import CorpusParams, write_corpus
from genbench.workflow.job import start_job

job = start_job(snakemake)
with job.writer() as w:
    info = write_corpus(job.stage_params(CorpusParams), w.dir)
    w.summary.update({k: info[k] for k in ("count", "shards", "captions_wrong")})
