# inject: a dataset's own images brought into generation (genbench/injection/). The reference
# images (textual_inversion_prepare) come from the original train split or the top retrieval
# hits. Textual inversion learns one token per class (one job per class, then the tokens
# gathered into one artifact); LoRA trains one adapter for the dataset or one per class (a
# lora_part job each, gathered by lora). img2img needs no training: its sampling starts from
# the references.


rule textual_inversion_prepare:
    input:
        unpack(upstream_of("textual_inversion_prepare")),
    output:
        manifest_of("textual_inversion_prepare"),
    log:
        log_of("textual_inversion_prepare"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("textual_inversion_prepare"),
        runtime=runtime_of("textual_inversion_prepare"),
    script:
        "../workflow_scripts/textual_inversion_prepare.py"


rule textual_inversion_class:
    input:
        unpack(upstream_of("textual_inversion")),
    output:
        token=paths.token_pattern(RESULTS),
        part_manifest=paths.part_manifest_pattern(paths.token_pattern(RESULTS)),
    log:
        paths.part_log_pattern(RESULTS, "textual_inversion_class"),
    benchmark:
        paths.part_benchmark_pattern(RESULTS, "textual_inversion_class")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(get_node("textual_inversion", wc)),
    params:
        recipe=recipe_of("textual_inversion"),
        runtime=runtime_of("textual_inversion"),
        class_id=lambda wc: int(wc.part),
    script:
        "../workflow_scripts/textual_inversion_class.py"


rule textual_inversion:
    input:
        unpack(upstream_of("textual_inversion")),
        tokens=get_parts("textual_inversion"),
    output:
        manifest_of("textual_inversion"),
    log:
        log_of("textual_inversion"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("textual_inversion"),
        runtime=runtime_of("textual_inversion"),
    script:
        "../workflow_scripts/textual_inversion.py"


rule lora_part:
    input:
        unpack(upstream_of("lora")),
    output:
        adapter=paths.adapter_pattern(RESULTS),
        part_manifest=paths.part_manifest_pattern(paths.adapter_pattern(RESULTS)),
    log:
        paths.part_log_pattern(RESULTS, "lora_part"),
    benchmark:
        paths.part_benchmark_pattern(RESULTS, "lora_part")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(get_node("lora", wc)),
    params:
        recipe=recipe_of("lora"),
        runtime=runtime_of("lora"),
        part=lambda wc: int(wc.part),
    script:
        "../workflow_scripts/lora_part.py"


rule lora:
    input:
        unpack(upstream_of("lora")),
        adapters=get_parts("lora"),
    output:
        manifest_of("lora"),
    log:
        log_of("lora"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("lora"),
        runtime=runtime_of("lora"),
    script:
        "../workflow_scripts/lora.py"
