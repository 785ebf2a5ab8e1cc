"""features: encode every image of one image set once with one encoder (float32, + labels, ids,
content digests); images that a ``reuse*`` input already encoded are taken from it."""

from genbench.evaluation.features import FeaturesParams, encode_image_set, load_features, save_features
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
features, encoder = encode_image_set(
    job.encoder_spec(),
    job.input_dir("images"),
    job.stage_params(FeaturesParams),
    job.dataset_info().num_classes,
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
