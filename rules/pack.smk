# pack_*: K-shot training sets in the ELEVATER format (store-mode zip + index + labelmap).


rule pack_generated:
    input:
        unpack(upstream_of("pack_generated")),
    output:
        manifest_of("pack_generated"),
    log:
        log_of("pack_generated"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("pack_generated"),
        runtime=runtime_of("pack_generated"),
    script:
        "../workflow_scripts/pack_generated.py"


rule pack_original:
    input:
        unpack(upstream_of("pack_original")),
    output:
        manifest_of("pack_original"),
    log:
        log_of("pack_original"),
    group:
        "subset"
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("pack_original"),
        runtime=runtime_of("pack_original"),
    script:
        "../workflow_scripts/pack_original.py"


rule pack_retrieval:
    input:
        unpack(upstream_of("pack_retrieval")),
    output:
        manifest_of("pack_retrieval"),
    log:
        log_of("pack_retrieval"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("pack_retrieval"),
        runtime=runtime_of("pack_retrieval"),
    script:
        "../workflow_scripts/pack_retrieval.py"
