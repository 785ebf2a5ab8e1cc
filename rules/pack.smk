# pack_*: K-shot training sets in the ELEVATER format (store-mode zip + index + labelmap).

rule pack_generated:
    input:
        unpack(upstream_of("pack_generated")),
    output:
        manifest_of("pack_generated"),
    params:
        recipe=recipe_of("pack_generated"),
        runtime=runtime_of("pack_generated"),
    log:
        log_of("pack_generated"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/pack_generated.py"

rule pack_original:
    input:
        unpack(upstream_of("pack_original")),
    output:
        manifest_of("pack_original"),
    params:
        recipe=recipe_of("pack_original"),
        runtime=runtime_of("pack_original"),
    log:
        log_of("pack_original"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/pack_original.py"

rule pack_retrieval:
    input:
        unpack(upstream_of("pack_retrieval")),
    output:
        manifest_of("pack_retrieval"),
    params:
        recipe=recipe_of("pack_retrieval"),
        runtime=runtime_of("pack_retrieval"),
    log:
        log_of("pack_retrieval"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/pack_generated.py"
