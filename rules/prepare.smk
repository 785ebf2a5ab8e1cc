# prepare (genbench/data/): real train/val/test splits in the canonical image-set form; fewshot:
# K-shot subsets; build_corpus: the "web" corpus the demo's models train on.


rule prepare:
    input:
        unpack(upstream_of("prepare")),
    output:
        manifest_of("prepare"),
    log:
        log_of("prepare"),
    group:
        "prepare"
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("prepare"),
        runtime=runtime_of("prepare"),
    script:
        "../workflow_scripts/prepare.py"


rule fewshot:
    input:
        unpack(upstream_of("fewshot")),
    output:
        manifest_of("fewshot"),
    log:
        log_of("fewshot"),
    group:
        "subset"
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("fewshot"),
        runtime=runtime_of("fewshot"),
    script:
        "../workflow_scripts/fewshot.py"


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
