"""prompt_plan: one row per image to generate (class, prompt, negative prompt, seed)."""

import json

from loguru import logger

from genbench.generation.prompts import PromptPlanParams, base_strategy, plan_prompts
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake)
params = job.stage_params(PromptPlanParams)
info = job.dataset_info()
descriptions = None
if "file" in params.strategy_params:  # the descriptions file the plan fingerprinted, still unchanged
    descriptions = str(check_input_unchanged(params.descriptions_file, params.strategy_params["file"], job.cache))
tokens = json.loads((job.input_dir("embeddings") / "tokens.json").read_text()) if job.has_input("embeddings") else None
references = None
if job.has_input("references"):  # img2img strategies: the reference images of each class
    from genbench.injection.references import reference_ids

    references = reference_ids(job.input_dir("references") / "references.jsonl")
text_model = None
if base_strategy(params.strategy, params.strategy_params) == "model_enc":
    from genbench.models.text2text import load_text2text

    job.use_torch()
    text_model = load_text2text(job.text2text_source())
rows = plan_prompts(
    params,
    info.classes,
    info.templates,
    tokens=tokens,
    descriptions_file=descriptions,
    text_model=text_model,
    references=references,
)
with job.writer() as w:
    with open(w.path("plan.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    w.summary.update(rows=len(rows), distinct_prompts=len({r["prompt"] for r in rows}))
logger.info(f"{len(rows)} prompts ({params.strategy}) for {info.name}")
