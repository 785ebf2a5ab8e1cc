# Features once per (encoder, image set); the text classifier; then every metric and the probe.

rule features:
    input:
        unpack(upstream_of("features")),
    output:
        manifest_of("features"),
    params:
        recipe=recipe_of("features"),
        runtime=runtime_of("features"),
    log:
        log_of("features"),
    threads: THREADS
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/features.py"

rule text_classifier:
    input:
        unpack(upstream_of("text_classifier")),
    output:
        manifest_of("text_classifier"),
    params:
        recipe=recipe_of("text_classifier"),
        runtime=runtime_of("text_classifier"),
    log:
        log_of("text_classifier"),
    threads: THREADS
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/text_classifier.py"

rule zeroshot_metric:
    input:
        unpack(upstream_of("zeroshot_metric")),
    output:
        manifest_of("zeroshot_metric"),
    params:
        recipe=recipe_of("zeroshot_metric"),
        runtime=runtime_of("zeroshot_metric"),
    log:
        log_of("zeroshot_metric"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/zeroshot_metric.py"

rule distribution_metrics:
    input:
        unpack(upstream_of("distribution_metrics")),
    output:
        manifest_of("distribution_metrics"),
    params:
        recipe=recipe_of("distribution_metrics"),
        runtime=runtime_of("distribution_metrics"),
    log:
        log_of("distribution_metrics"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/distribution_metrics.py"

rule proxy_distance:
    input:
        unpack(upstream_of("proxy_distance")),
    output:
        manifest_of("proxy_distance"),
    params:
        recipe=recipe_of("proxy_distance"),
        runtime=runtime_of("proxy_distance"),
    log:
        log_of("proxy_distance"),
    threads: 1
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/proxy_distance.py"

rule elevater:
    input:
        unpack(upstream_of("elevater")),
    output:
        manifest_of("elevater"),
    params:
        recipe=recipe_of("elevater"),
        runtime=runtime_of("elevater"),
    log:
        log_of("elevater"),
    threads: THREADS
    conda:
        "../envs/genbench.yaml"
    script:
        "../workflow_scripts/elevater.py"
