# Shared helpers: validate the config, build the artifact plan, and the small functions
# every rule uses to find its recipe, its upstream artifacts and its log.
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the genbench package of this checkout

from snakemake.exceptions import WorkflowError

from genbench.config import check_results_dir, validate_config
from genbench.errors import GenBenchError
from genbench.plan import build_plan

try:
    validate_config(config)
    check_results_dir(config["results_dir"])
    PLAN = build_plan(config)
except GenBenchError as err:
    raise WorkflowError(f"GenBench: {err}") from None

RESULTS = PLAN.results_dir
THREADS = config.get("threads", 1)


wildcard_constraints:
    scope=r"[A-Za-z0-9_.+-]+",
    key=r"[0-9a-f]{12}",
    shard=r"[0-9]{5}",


def manifest_of(stage):
    """Output pattern of a stage: the manifest that marks its artifact finished."""
    return f"{RESULTS}/{stage}/{{scope}}/{{key}}/MANIFEST.json"


def log_of(stage):
    return f"{RESULTS}/logs/{stage}/{{scope}}/{{key}}.log"


def node_of(stage):
    return lambda wc: PLAN.get(stage, wc.scope, wc.key)


def upstream_of(stage):
    """Input function: the manifest of every upstream artifact, by role name."""
    return lambda wc: {name: n.manifest for name, n in PLAN.get(stage, wc.scope, wc.key).inputs.items()}


def recipe_of(stage):
    return lambda wc: PLAN.get(stage, wc.scope, wc.key).recipe


def all_targets():
    return PLAN.targets() + [f"{RESULTS}/summary.csv"]


def gpus_for(node):
    """GPUs a job asks for (Slurm: --gpus): one when the artifact's device is CUDA."""
    device = str(node.params.get("device", "cpu"))
    return 1 if device.startswith("cuda") else 0
