# models (genbench/models/): tiny models built in code for the tests, and the demo's models
# trained on the corpus (real models are loaded by path or hub id).


rule build_models:
    input:
        unpack(upstream_of("build_models")),
    output:
        manifest_of("build_models"),
    log:
        log_of("build_models"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("build_models"),
        runtime=runtime_of("build_models"),
    script:
        "../workflow_scripts/build_models.py"


# The "web" corpus and the models trained on it ({model: trained}): the CLIP (the feature
# encoder, and the generator's text encoder), the generator's VAE and UNet, model_enc's T5.
# The CLIP -> UNet chain is the demo's critical path: its jobs go before any job that is ready
# at the same time (without it, small jobs kept a core busy and the 2-thread UNet waited).
TRAINING_PRIORITY = 50


rule train_encoder:
    input:
        unpack(upstream_of("train_encoder")),
    output:
        manifest_of("train_encoder"),
    log:
        log_of("train_encoder"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "train_encoder")
    priority: TRAINING_PRIORITY
    conda:
        "../envs/genbench.yaml"
    threads: get_training_threads("encoder")
    params:
        recipe=recipe_of("train_encoder"),
        runtime=runtime_of("train_encoder"),
    script:
        "../workflow_scripts/train_encoder.py"


rule train_vae:
    input:
        unpack(upstream_of("train_vae")),
    output:
        manifest_of("train_vae"),
    log:
        log_of("train_vae"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "train_vae")
    priority: TRAINING_PRIORITY
    conda:
        "../envs/genbench.yaml"
    threads: get_training_threads("vae")
    params:
        recipe=recipe_of("train_vae"),
        runtime=runtime_of("train_vae"),
    script:
        "../workflow_scripts/train_vae.py"


rule train_generator:
    input:
        unpack(upstream_of("train_generator")),
    output:
        manifest_of("train_generator"),
    log:
        log_of("train_generator"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "train_generator")
    priority: TRAINING_PRIORITY
    conda:
        "../envs/genbench.yaml"
    threads: get_training_threads("generator")
    params:
        recipe=recipe_of("train_generator"),
        runtime=runtime_of("train_generator"),
    script:
        "../workflow_scripts/train_generator.py"


rule train_text2text:
    input:
        unpack(upstream_of("train_text2text")),
    output:
        manifest_of("train_text2text"),
    log:
        log_of("train_text2text"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "train_text2text")
    conda:
        "../envs/genbench.yaml"
    threads: get_training_threads("text2text")
    params:
        recipe=recipe_of("train_text2text"),
        runtime=runtime_of("train_text2text"),
    script:
        "../workflow_scripts/train_text2text.py"
