"""textual_inversion_class: learn one class's token embedding from its reference images."""

from loguru import logger

from genbench.core.artifacts import write_part_manifest
from genbench.data.imageset import read_index
from genbench.generation.textual_inversion import class_token, load_reference_images, save_learned_embeds, train_token
from genbench.models.generators import load_text_to_image_pipeline
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
p = job.params
info = job.dataset_info()
class_id = snakemake.params.class_id
index = job.input_dir("references") / "references.jsonl"
records = [r for r in read_index(index) if r["label"] == class_id]
pipe = load_text_to_image_pipeline(job.generator_source(), device=p["device"])
token = class_token(info.name, info.slugs[class_id])
embedding = train_token(
    pipe,
    load_reference_images(index, records),
    token,
    p["initializer"],
    info.classes[class_id],
    steps=p["steps"],
    lr=p["lr"],
    batch_size=p["batch_size"],
    resolution=p["resolution"],
    seed=p["seed"] + class_id,
    log=logger.info,
)
save_learned_embeds(snakemake.output.token, {token: embedding})
write_part_manifest(snakemake.output.token, job.key, job.cache)
