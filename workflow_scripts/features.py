"""features: encode every image of one image set once with one encoder (float32, + labels, ids,
content digests); images that a ``reuse*`` input already encoded are taken from it."""

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import extract_image_features, load_features, save_features
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
p = job.params
info = job.dataset_info()
index = job.input_dir("images") / f"{p['split']}.jsonl"
encoder = load_encoder(job.encoder_spec(), device=p["device"])
features = extract_image_features(
    encoder,
    index,
    num_classes=info.num_classes,
    batch_size=job.runtime["batch_size"],
    num_workers=job.runtime["num_workers"],
    reuse=[load_features(job.input_dir(name)) for name in job.inputs_named("reuse")],
)
with job.writer() as w:
    save_features(w.dir, features)
    w.summary.update(
        count=len(features.ids),
        dim=int(features.feats.shape[1]),
        encoder=encoder.name,
        images_encoded=encoder.images_encoded,
        reused=features.meta["reused"],
    )
