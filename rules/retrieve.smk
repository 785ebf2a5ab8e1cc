# retrieve: the retrieval baseline (search a pool with class prompts, keep the top K per class);
# textual inversion: reference images per class, one learned token per class (one job each).


rule build_pool:
    input:
        unpack(upstream_of("build_pool")),
    output:
        manifest_of("build_pool"),
    params:
        recipe=recipe_of("build_pool"),
        runtime=runtime_of("build_pool"),
    log:
        log_of("build_pool"),
    threads: THREADS
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/build_pool.py"


rule retrieve:
    input:
        unpack(upstream_of("retrieve")),
    output:
        manifest_of("retrieve"),
    params:
        recipe=recipe_of("retrieve"),
        runtime=runtime_of("retrieve"),
    log:
        log_of("retrieve"),
    threads: THREADS
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/retrieve.py"


rule textual_inversion_prepare:
    input:
        unpack(upstream_of("textual_inversion_prepare")),
    output:
        manifest_of("textual_inversion_prepare"),
    params:
        recipe=recipe_of("textual_inversion_prepare"),
        runtime=runtime_of("textual_inversion_prepare"),
    log:
        log_of("textual_inversion_prepare"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/textual_inversion_prepare.py"


rule textual_inversion_class:
    input:
        unpack(upstream_of("textual_inversion")),
    output:
        token=paths.token_pattern(RESULTS),
        part_manifest=paths.part_manifest_pattern(paths.token_pattern(RESULTS)),
    params:
        recipe=recipe_of("textual_inversion"),
        runtime=runtime_of("textual_inversion"),
        class_id=lambda wc: int(wc.part),
    log:
        paths.part_log_pattern(RESULTS, "textual_inversion_class"),
    threads: THREADS
    resources:
        gpu=lambda wc: gpus_for(get_node("textual_inversion", wc)),
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/textual_inversion_class.py"


rule textual_inversion:
    input:
        unpack(upstream_of("textual_inversion")),
        tokens=get_parts("textual_inversion"),
    output:
        manifest_of("textual_inversion"),
    params:
        recipe=recipe_of("textual_inversion"),
        runtime=runtime_of("textual_inversion"),
    log:
        log_of("textual_inversion"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/textual_inversion.py"
