# sample: prompt plans, then images from a diffusers pipeline, one Snakemake job per shard.


rule prompt_plan:
    input:
        unpack(upstream_of("prompt_plan")),
    output:
        manifest_of("prompt_plan"),
    log:
        log_of("prompt_plan"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("prompt_plan"),
        runtime=runtime_of("prompt_plan"),
    script:
        "../workflow_scripts/prompt_plan.py"


rule sample_shard:
    input:
        unpack(upstream_of("sample_images")),
    output:
        shard=paths.shard_pattern(RESULTS),
        part_manifest=paths.part_manifest_pattern(paths.shard_pattern(RESULTS)),
    log:
        paths.part_log_pattern(RESULTS, "sample_shard"),
    benchmark:
        paths.part_benchmark_pattern(RESULTS, "sample_shard")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(get_node("sample_images", wc)),
    params:
        recipe=recipe_of("sample_images"),
        runtime=runtime_of("sample_images"),
        shard=lambda wc: int(wc.part),
    script:
        "../workflow_scripts/sample_shard.py"


rule sample_images:
    input:
        unpack(upstream_of("sample_images")),
        shards=get_parts("sample_images"),
    output:
        manifest_of("sample_images"),
    log:
        log_of("sample_images"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("sample_images"),
        runtime=runtime_of("sample_images"),
    script:
        "../workflow_scripts/sample_images.py"
