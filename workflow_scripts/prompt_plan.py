"""prompt_plan: one row per image to generate (class, prompt, negative prompt, seed)."""

import json

from loguru import logger

from genbench.generation.prompts import base_strategy, plan_prompts
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
descriptions = None
if "file" in p["strategy_params"]:  # the descriptions file the plan fingerprinted, still unchanged
    descriptions = str(check_input_unchanged(job.runtime["descriptions_file"], p["strategy_params"]["file"], job.cache))
tokens = json.loads((job.input_dir("embeddings") / "tokens.json").read_text()) if job.has_input("embeddings") else None
text_model = None
if base_strategy(p["strategy"], p["strategy_params"]) == "model_enc":
    from genbench.models.text2text import load_text2text

    job.use_torch()
    text_model = load_text2text(job.text2text_source())
rows = plan_prompts(
    p["strategy"],
    p["strategy_params"],
    info.classes,
    info.templates,
    images_per_class=p["images_per_class"],
    seed=p["seed"],
    tokens=tokens,
    descriptions_file=descriptions,
    text_model=text_model,
)
with job.writer() as w:
    with open(w.path("plan.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    w.summary.update(rows=len(rows), distinct_prompts=len({r["prompt"] for r in rows}))
logger.info(f"{len(rows)} prompts ({p['strategy']}) for {info.name}")
