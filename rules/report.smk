# report: one tidy table over every evaluation, its stable view results/summary.csv, and plots.

rule aggregate:
    input:
        unpack(upstream_of("aggregate")),
    output:
        manifest_of("aggregate"),
    params:
        recipe=recipe_of("aggregate"),
    log:
        log_of("aggregate"),
    threads: 1
    script:
        "../workflow_scripts/aggregate.py"


rule summary:
    input:
        PLAN.targets(),
    output:
        f"{RESULTS}/summary.csv",
    log:
        f"{RESULTS}/logs/summary.log",
    script:
        "../workflow_scripts/summary.py"
