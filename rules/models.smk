# Tiny models built in code for the demo and tests (real models are loaded by path/id).

rule build_models:
    input:
        unpack(upstream_of("build_models")),
    output:
        manifest_of("build_models"),
    params:
        recipe=recipe_of("build_models"),
        runtime=runtime_of("build_models"),
    log:
        log_of("build_models"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/build_models.py"
