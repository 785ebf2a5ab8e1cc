"""prompt_plan: one row per image to generate (class, prompt, negative prompt, seed)."""
import json

from loguru import logger

from genbench.generation.prompts import make_prompt_plan
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake, torch=True)
p = job.params
info = job.dataset_info()
params = {k: v for k, v in p["strategy_params"].items() if k != "base"}
if "file" in params:  # the descriptions file the plan fingerprinted, still unchanged
    params["file"] = str(check_input_unchanged(job.runtime["descriptions_file"], params["file"], job.cache))
params["images_per_class"] = p["images_per_class"]
strategy = p["strategy"]
if job.has_input("embeddings"):  # ti_original / ti_retrieval: a base strategy + learned tokens
    strategy = p["strategy_params"].get("base", "simple_template")
    params["textual_inversion"] = json.loads((job.input_dir("embeddings") / "tokens.json").read_text())
text_model = None
if strategy == "model_enc":
    from genbench.models.text2text import load_text2text

    text_model = load_text2text(job.text2text_source())
rows = make_prompt_plan(strategy, list(info.classes), list(info.templates), params, p["seed"],
                        text_model=text_model)
with job.writer() as w:
    with open(w.path("plan.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    w.summary.update(rows=len(rows), distinct_prompts=len({r["prompt"] for r in rows}))
logger.info(f"{len(rows)} prompts ({p['strategy']}) for {info.name}")
