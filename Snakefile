# GenBench: generated vs retrieved vs original training data for visual recognition.
# Thin on purpose: config + validation here, the plan and helpers in rules/common.smk,
# one file per stage in rules/, all logic in the genbench package.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/configure.smk"
include: "rules/prepare.smk"
include: "rules/sample.smk"
include: "rules/retrieve.smk"
include: "rules/inject.smk"
include: "rules/evaluate.smk"
include: "rules/pack.smk"
include: "rules/report.smk"


# The tables are read and written on the submitting host: a cluster job each would cost more
# in queueing and start-up than they take.
localrules:
    aggregate,
    summary,


rule all:
    default_target: True
    input:
        all_targets(),
