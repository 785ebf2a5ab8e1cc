# sample: prompt plans, then images from a diffusers pipeline, one Snakemake job per shard.

rule prompt_plan:
    input:
        unpack(upstream_of("prompt_plan")),
    output:
        manifest_of("prompt_plan"),
    params:
        recipe=recipe_of("prompt_plan"),
        runtime=runtime_of("prompt_plan"),
    log:
        log_of("prompt_plan"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/prompt_plan.py"

rule sample_shard:
    input:
        unpack(upstream_of("sample_images")),
    output:
        shard=paths.shard_pattern(RESULTS),
        part_manifest=paths.part_manifest_pattern(paths.shard_pattern(RESULTS)),
    params:
        recipe=recipe_of("sample_images"),
        runtime=runtime_of("sample_images"),
        shard=lambda wc: int(wc.part),
    log:
        paths.part_log_pattern(RESULTS, "sample_shard"),
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(get_node("sample_images", wc)),
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/sample_shard.py"


rule sample_images:
    input:
        unpack(upstream_of("sample_images")),
        shards=get_parts("sample_images"),
    output:
        manifest_of("sample_images"),
    params:
        recipe=recipe_of("sample_images"),
        runtime=runtime_of("sample_images"),
    log:
        log_of("sample_images"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/sample_images.py"
