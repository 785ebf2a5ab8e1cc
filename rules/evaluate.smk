# Features once per (encoder, image set); the text classifier; then every metric and the probe.


rule features:
    input:
        unpack(upstream_of("features")),
    output:
        manifest_of("features"),
    log:
        log_of("features"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "features")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    params:
        recipe=recipe_of("features"),
        runtime=runtime_of("features"),
    script:
        "../workflow_scripts/features.py"


rule text_classifier:
    input:
        unpack(upstream_of("text_classifier")),
    output:
        manifest_of("text_classifier"),
    log:
        log_of("text_classifier"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "text_classifier")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    params:
        recipe=recipe_of("text_classifier"),
        runtime=runtime_of("text_classifier"),
    script:
        "../workflow_scripts/text_classifier.py"


rule zeroshot_metric:
    input:
        unpack(upstream_of("zeroshot_metric")),
    output:
        manifest_of("zeroshot_metric"),
    log:
        log_of("zeroshot_metric"),
    group:
        get_evaluation_group("zeroshot_metric")
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("zeroshot_metric"),
        runtime=runtime_of("zeroshot_metric"),
    script:
        "../workflow_scripts/zeroshot_metric.py"


rule distribution_metrics:
    input:
        unpack(upstream_of("distribution_metrics")),
    output:
        manifest_of("distribution_metrics"),
    log:
        log_of("distribution_metrics"),
    group:
        get_evaluation_group("distribution_metrics")
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("distribution_metrics"),
        runtime=runtime_of("distribution_metrics"),
    script:
        "../workflow_scripts/distribution_metrics.py"


rule proxy_distance:
    input:
        unpack(upstream_of("proxy_distance")),
    output:
        manifest_of("proxy_distance"),
    log:
        log_of("proxy_distance"),
    group:
        get_evaluation_group("proxy_distance")
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("proxy_distance"),
        runtime=runtime_of("proxy_distance"),
    script:
        "../workflow_scripts/proxy_distance.py"


rule elevater:
    input:
        unpack(upstream_of("elevater")),
    output:
        manifest_of("elevater"),
    log:
        log_of("elevater"),
    benchmark:
        paths.benchmark_pattern(RESULTS, "elevater")
    group:
        get_evaluation_group("elevater")
    conda:
        "../envs/genbench.yaml"
    threads: THREADS
    params:
        recipe=recipe_of("elevater"),
        runtime=runtime_of("elevater"),
    script:
        "../workflow_scripts/elevater.py"
