# report: one tidy table over every evaluation (content-addressed), then stable-path views of it
# for people and for `snakemake --report`: results/summary.csv, correlations, plots, image grids.


rule aggregate:
    input:
        unpack(upstream_of("aggregate")),
    output:
        manifest_of("aggregate"),
    log:
        log_of("aggregate"),
    conda:
        "../envs/genbench.yaml"
    threads: 1
    params:
        recipe=recipe_of("aggregate"),
        runtime=runtime_of("aggregate"),
    script:
        "../workflow_scripts/aggregate.py"


rule summary:
    input:
        aggregate=[ancient(p) for p in PLAN.aggregate_manifests()],
        samples=[ancient(n.manifest) for n in PLAN.sample_sets],
    output:
        summary=report(f"{RESULTS}/summary.csv", category="Results", caption="../report/summary.rst"),
        correlations=report(
            f"{RESULTS}/report/correlations.csv", category="Metric correlation", caption="../report/correlations.rst"
        ),
        correlation_plot=report(
            f"{RESULTS}/report/correlation.png", category="Metric correlation", caption="../report/correlations.rst"
        ),
        gain_plot=report(f"{RESULTS}/report/gain.png", category="Results", caption="../report/gain.rst"),
        scaling_plot=report(f"{RESULTS}/report/scaling.png", category="Results", caption="../report/scaling.rst"),
        findings=f"{RESULTS}/report/findings.txt",
        grids=report(
            directory(f"{RESULTS}/report/samples"),
            patterns=["{name}.png"],
            category="Samples",
            caption="../report/samples.rst",
        ),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/genbench.yaml"
    params:
        sample_labels=[f"{n.scope}-{n.folder}" for n in PLAN.sample_sets],
        training_jobs=get_training_jobs(),
        targets=REPORT_TARGETS,
        run_config=config,
    script:
        "../workflow_scripts/summary.py"
