"""Which heavy packages each workflow script may load.

Every Snakemake job is a fresh Python process that pays for its imports: on 2 cores ``torch``
costs about 3.5 s, ``open_clip`` 7 s, ``diffusers`` 6 s, ``sklearn.svm`` 2.5 s, against 0.7 s
for ``numpy`` + ``pandas``. A job therefore imports only the heavy packages its computation
uses. This module is the policy; ``tests/test_job_imports.py`` enforces it on each script's
imports, the workflow tests on what each job really loaded (its log's last line), and
``benchmarks/job_overhead.py`` prints what it costs.

Kinds:

- ``light``: arithmetic on files and cached arrays (configure, few-shot, packing, gathering,
  CLER on cached features, tables). No heavy package at all.
- ``metric``: the proxy-A distance on cached features; scikit-learn for its SVMs.
- ``kernels``: the distribution metrics on cached features; torch computes the quadratic ones
  (``genbench.evaluation.metrics.kernels``, on the CPU or a GPU).
- ``probe``: the linear probe; torch computes its tensors.
- ``model``: a model runs (features, sampling, retrieval's prompts, training): anything.

``on_demand`` names what a script loads only for some of its jobs (a dataset's loader, the
T5 of ``model_enc``): its top-level imports must still be free of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

HEAVY_PACKAGES = ("torch", "open_clip", "diffusers", "transformers", "sklearn")


@dataclass(frozen=True)
class JobKind:
    name: str
    uses: tuple[str, ...]  # heavy packages every job of the kind may import at start
    on_demand: tuple[str, ...] = ()  # loaded later, only by the jobs that need them

    def allowed(self) -> set[str]:
        return set(self.uses) | set(self.on_demand)


LIGHT = JobKind("light", ())
METRIC = JobKind("metric", ("sklearn",))
KERNELS = JobKind("kernels", ("torch",))
PROBE = JobKind("probe", ("torch",))
MODEL = JobKind("model", HEAVY_PACKAGES)
DATA_SOURCE = JobKind("light", (), on_demand=("torch", "sklearn"))  # torchvision / sklearn loaders
PROMPTS = JobKind("light", (), on_demand=("torch", "transformers"))  # model_enc's T5

SCRIPT_KINDS: dict[str, JobKind] = {
    "configure": LIGHT,
    "prepare": DATA_SOURCE,
    "fewshot": LIGHT,
    "prompt_plan": PROMPTS,
    "sample_images": LIGHT,
    "textual_inversion_prepare": LIGHT,
    "textual_inversion": LIGHT,
    "lora": LIGHT,
    "pack_original": LIGHT,
    "pack_generated": LIGHT,
    "pack_retrieval": LIGHT,
    "zeroshot_metric": LIGHT,
    "aggregate": LIGHT,
    "summary": LIGHT,
    "build_corpus": LIGHT,
    "distribution_metrics": KERNELS,
    "proxy_distance": METRIC,
    "elevater": PROBE,
    "features": MODEL,
    "text_classifier": MODEL,
    "sample_shard": MODEL,
    "retrieve": MODEL,
    "build_pool": MODEL,
    "build_models": MODEL,
    "textual_inversion_class": MODEL,
    "lora_part": MODEL,
    "train_encoder": MODEL,
    "train_vae": MODEL,
    "train_generator": MODEL,
    "train_text2text": MODEL,
}
LOADED_MARK = "heavy packages loaded:"


def heavy_packages_loaded(modules=None) -> list[str]:
    """The heavy packages among the imported modules (``sys.modules`` by default)."""
    names = sys.modules if modules is None else modules
    return [p for p in HEAVY_PACKAGES if p in names]


def loaded_line(modules=None) -> str:
    """The line a job logs last: ``heavy packages loaded: torch, sklearn`` (or ``none``)."""
    return f"{LOADED_MARK} {', '.join(heavy_packages_loaded(modules)) or 'none'}"


def script_imports(path) -> str:
    """The top-level import statements of a workflow script, as code to run on their own (what
    a job imports before its first line of work)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(node) for node in imports)
