# prepare: real train/val/test splits in the canonical image-set form; fewshot: K-shot subsets.


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
