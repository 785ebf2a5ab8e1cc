# prepare: real train/val/test splits in the canonical image-set form; fewshot: K-shot subsets.

rule prepare:
    input:
        unpack(upstream_of("prepare")),
    output:
        manifest_of("prepare"),
    params:
        recipe=recipe_of("prepare"),
        runtime=runtime_of("prepare"),
    log:
        log_of("prepare"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/prepare.py"

rule fewshot:
    input:
        unpack(upstream_of("fewshot")),
    output:
        manifest_of("fewshot"),
    params:
        recipe=recipe_of("fewshot"),
        runtime=runtime_of("fewshot"),
    log:
        log_of("fewshot"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/fewshot.py"
