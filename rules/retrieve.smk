# retrieve: the retrieval baseline (genbench/retrieval/): build a pool, search it with class
# prompts, keep the top K per class.


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
