# configure: one metadata JSON per dataset (classes, slugs, templates, metric, splits).


rule configure:
    input:
        unpack(upstream_of("configure")),
    output:
        manifest_of("configure"),
    log:
        log_of("configure"),
    group:
        "prepare"
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("configure"),
        runtime=runtime_of("configure"),
    script:
        "../workflow_scripts/configure.py"
