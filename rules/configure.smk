# configure: one metadata JSON per dataset (classes, slugs, templates, metric, splits).

rule configure:
    input:
        unpack(upstream_of("configure")),
    output:
        manifest_of("configure"),
    params:
        recipe=recipe_of("configure"),
        runtime=runtime_of("configure"),
    log:
        log_of("configure"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/configure.py"
