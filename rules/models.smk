# Tiny models built in code for the demo and tests (real models are loaded by path/id).


rule build_models:
    input:
        unpack(upstream_of("build_models")),
    output:
        manifest_of("build_models"),
    log:
        log_of("build_models"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("build_models"),
        runtime=runtime_of("build_models"),
    script:
        "../workflow_scripts/build_models.py"
