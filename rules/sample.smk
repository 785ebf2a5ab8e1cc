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
        shard=f"{RESULTS}/sample_images/{{scope}}/{{key}}/shards/shard-{{shard}}.tar",
        part_manifest=f"{RESULTS}/sample_images/{{scope}}/{{key}}/shards/shard-{{shard}}.json",
    params:
        recipe=recipe_of("sample_images"),
        runtime=runtime_of("sample_images"),
        shard=lambda wc: int(wc.shard),
    log:
        f"{RESULTS}/logs/sample_shard/{{scope}}/{{key}}/{{shard}}.log",
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(PLAN.get("sample_images", wc.scope, wc.key)),
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/sample_shard.py"


rule sample_images:
    input:
        unpack(upstream_of("sample_images")),
        shards=lambda wc: [ancient(p) for p in PLAN.shard_paths(PLAN.get("sample_images", wc.scope, wc.key))],
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
