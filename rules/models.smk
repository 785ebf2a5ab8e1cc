# Tiny models built in code for the demo and tests (real models are loaded by path/id).


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


# The "web" corpus and the models trained on it ({type: open_clip, model: trained}).


rule build_corpus:
    input:
        unpack(upstream_of("build_corpus")),
    output:
        manifest_of("build_corpus"),
    log:
        log_of("build_corpus"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("build_corpus"),
        runtime=runtime_of("build_corpus"),
    script:
        "../workflow_scripts/build_corpus.py"


rule train_encoder:
    input:
        unpack(upstream_of("train_encoder")),
    output:
        manifest_of("train_encoder"),
    log:
        log_of("train_encoder"),
    conda:
        "../envs/genbench.yaml"
    threads: config.get("training", {}).get("threads", 1)
    params:
        recipe=recipe_of("train_encoder"),
        runtime=runtime_of("train_encoder"),
    script:
        "../workflow_scripts/train_encoder.py"
