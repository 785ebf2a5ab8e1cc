# Shared helpers: validate the config, build the artifact plan, and the small functions
# every rule uses to find its recipe, its upstream artifacts and its log.
import os
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the genbench package of this checkout

from snakemake.exceptions import WorkflowError

from genbench.core.config import check_results_dir
from genbench.plan.validate import validate_config
from genbench.core.errors import GenBenchError
from genbench.core.housekeeping import acquire_run_lock, clean_staging, describe_problems, preflight
from genbench.core import paths
from genbench.report.findings import targets_of
from genbench.workflow.runner import reads_only
from genbench.workflow.warm import SERVER_ENV, server_spec
from genbench.plan.build import (
    EVALUATION_GROUP,
    FINGERPRINTS_ENV,
    build_plan,
    evaluation_group,
    load_fingerprints,
    save_fingerprints,
)

try:
    validate_config(config)
    check_results_dir(config["results_dir"])
    if workflow.is_main_process:
        PLAN = build_plan(config)
        os.environ[FINGERPRINTS_ENV] = save_fingerprints(PLAN)  # inherited by every job
    else:  # a job (e.g. on a Slurm node): the run's fingerprints, not a new walk of the data
        PLAN = build_plan(config, known_fingerprints=load_fingerprints(os.environ.get(FINGERPRINTS_ENV)))
except GenBenchError as err:
    raise WorkflowError(f"GenBench: {err}") from None

RESULTS = PLAN.results_dir
REPORT_TARGETS = targets_of(config, workflow.overwrite_configfiles)  # the demo's, or a config file's own
THREADS = config.get("threads", 1)


def check_results(read_only):
    """On every invocation, before the DAG is built (so a run that plans no job is checked as
    well): check every finished artifact the plan names (through the stat cache). A run also
    holds the results folder's run lock and first removes what dead jobs left; a dry run (or
    --unlock, --summary, --report, ...) only checks and reports."""
    try:
        if not read_only:
            acquire_run_lock(RESULTS)
            clean_staging(RESULTS, log=print)
        problems = preflight(PLAN, PLAN.stat_cache)
        if problems:
            raise GenBenchError(describe_problems(problems))
    except GenBenchError as err:
        raise WorkflowError(f"GenBench: {err}") from None


if workflow.is_main_process:
    check_results(read_only=reads_only(sys.argv))


def export_job_server():
    """A local run's model jobs start warm, forked from one process that has imported torch,
    open_clip and diffusers (genbench.workflow.warm; GENBENCH_WARM_JOBS=0 turns it off)."""
    if workflow.is_main_process and workflow.local_exec and not reads_only(sys.argv):
        spec = server_spec(os.getpid())
        if spec:
            os.environ[SERVER_ENV] = spec  # inherited by every job


export_job_server()


wildcard_constraints:
    scope=paths.SCOPE_PATTERN,
    folder=paths.FOLDER_PATTERN,
    part=paths.PART_PATTERN,


def manifest_of(stage):
    """Output pattern of a stage: the manifest that marks its artifact finished."""
    return paths.manifest_pattern(RESULTS, stage)


def log_of(stage):
    return paths.log_pattern(RESULTS, stage)


def get_node(stage, wc):
    """The planned artifact a job of ``stage`` makes (its folder is in the wildcards)."""
    return PLAN.get(stage, wc.scope, wc.folder)


def declares_inputs(node):
    """Whether a job's inputs are named to Snakemake: when its artifact is not finished, or it is
    forced (--forcerun of its rule or file, -F, -f; a cluster job runs with --force).

    A finished artifact names none: its key already holds its inputs' keys, so nothing upstream
    can make it stale, and an upstream artifact deleted after it was made is rebuilt alone (it is
    a target of its own, ``all_targets``) instead of Snakemake rerunning everything after it."""
    if not os.path.exists(node.manifest):
        return True
    dag = workflow.dag_settings
    if dag.forceall or dag.forcetargets:
        return True
    forced = set(dag.forcerun)
    return node.stage in forced or os.path.abspath(node.manifest) in {os.path.abspath(f) for f in forced}


def get_parts(stage):
    """Input function: the part files (shards, class tokens) an artifact gathers, ancient()."""

    def parts(wc):
        node = get_node(stage, wc)
        return [ancient(p) for p in node.part_paths()] if declares_inputs(node) else []

    return parts


def upstream_of(stage):
    """Input function: the manifest of every upstream artifact, by role name.

    ancient(): an artifact's folder is named by the hash of everything that makes it, so a
    newer upstream file (a copy, a touch, a checkout) never makes it stale; a changed upstream
    artifact has another key, hence another path. Jobs check every input's digests instead."""

    def upstream(wc):
        node = get_node(stage, wc)
        return {name: ancient(n.manifest) for name, n in node.inputs.items()} if declares_inputs(node) else {}

    return upstream


def recipe_of(stage):
    return lambda wc: get_node(stage, wc).recipe


def runtime_of(stage):
    """Input function: what the job needs that is not in its key (paths, batch sizes)."""
    return lambda wc: get_node(stage, wc).runtime


def all_targets():
    """The tables, the summary and every planned artifact that is missing now: one deleted
    while its dependants were finished is rebuilt alone. With the check at every invocation,
    a run that plans no job has found every planned artifact present and verified."""
    return PLAN.aggregate_manifests() + [f"{RESULTS}/summary.csv"] + PLAN.missing_manifests()


def get_evaluation_group(stage):
    """Group function: the cluster group of an evaluation job, one per evaluated set.

    Snakemake merges same-id groups only under ``--group-components <parent id>=<n>``, and it
    records a parent id for wildcard strings only; a function's ids are registered here under
    "evaluate", so the Slurm profile's ``group-components: [evaluate=...]`` applies to all."""

    def group(wc):
        group_id = evaluation_group(get_node(stage, wc))
        workflow.parent_groupids[group_id] = EVALUATION_GROUP
        return group_id

    return group


def get_training_threads(section):
    """Threads of a training stage: ``training.<section>.threads``, else ``training.threads``
    (keyed: torch's CPU reductions, hence the weights, depend on the thread count)."""
    training = config.get("training", {})
    return int((training.get(section) or {}).get("threads", training.get("threads", 1)))


TRAINING_STAGES = ("train_encoder", "train_vae", "train_generator", "train_text2text")


def get_training_jobs():
    """Where each training job's time is recorded: its benchmark file and its log."""
    return [
        {
            "stage": node.stage,
            "benchmark": paths.benchmark_pattern(RESULTS, node.stage).format(scope=node.scope, folder=node.folder),
            "log": paths.log_pattern(RESULTS, node.stage).format(scope=node.scope, folder=node.folder),
        }
        for stage in TRAINING_STAGES
        for node in PLAN.by_stage(stage)
    ]


def gpus_for(node):
    """GPUs a job asks for (Slurm: --gpus): one when the artifact's device is CUDA."""
    device = str(node.params.get("device", "cpu"))
    return 1 if device.startswith("cuda") else 0
