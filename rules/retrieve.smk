# retrieve: the retrieval baseline (search a pool with class prompts, keep the top K per class);
# textual inversion: reference images per class, one learned token per class (one job each).


rule build_pool:
    input:
        unpack(upstream_of("build_pool")),
    output:
        manifest_of("build_pool"),
    log:
        log_of("build_pool"),
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    params:
        recipe=recipe_of("build_pool"),
        runtime=runtime_of("build_pool"),
    script:
        "../workflow_scripts/build_pool.py"


rule retrieve:
    input:
        unpack(upstream_of("retrieve")),
    output:
        manifest_of("retrieve"),
    log:
        log_of("retrieve"),
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    params:
        recipe=recipe_of("retrieve"),
        runtime=runtime_of("retrieve"),
    script:
        "../workflow_scripts/retrieve.py"


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
