"""What every workflow script shares: logging, threads, recipe access and model resolution.

A script in ``workflow_scripts/`` is glue: it starts the job, loads its checked inputs, calls
the package function of its stage, and writes the artifact::

    job = start_job(snakemake)               # warm hand-over, log file, torch threads, recipe
    with job.writer() as w:                   # staged files, manifest last
        w.summary.update(stage_function(job.input_dir("..."), job.params, w.dir))
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from loguru import logger

from genbench.core.artifacts import ArtifactWriter, check_artifact, named_by_key, recipe_key, short_key
from genbench.core.errors import GenBenchError
from genbench.core.fingerprint import stat_cache_for


def set_torch_threads(threads: int) -> None:
    """Pin torch to the rule's threads: on 2 cores, oversubscription costs 5-50x."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process


def _artifact_dir(output: str, key: str) -> Path:
    """The artifact folder an output lies in: the nearest parent named by the key."""
    for parent in Path(output).parents:
        if named_by_key(parent.name, key):
            return parent
    raise GenBenchError(f"output {output} does not lie in an artifact folder named by {short_key(key)}")


class Job:
    """One running rule: its recipe, its runtime params, its checked upstream artifacts and its
    artifact directory.

    Every upstream artifact named in the recipe is checked when the job starts (manifest, key,
    every file's digest through the stat cache); a mismatch stops the job with an error naming
    the file and the key.
    """

    def __init__(self, smk):
        self.smk = smk
        self.recipe: dict = dict(smk.params.recipe)
        self.params: dict = self.recipe["params"]
        self.runtime: dict = dict(getattr(smk.params, "runtime", None) or {})
        self.key = recipe_key(self.recipe)
        self.out_dir = _artifact_dir(smk.output[0], self.key)
        self.results_dir = self.out_dir.parents[2]
        self.cache = stat_cache_for(self.results_dir)
        self.threads = int(getattr(smk, "threads", 1))
        self.manifests: dict[str, dict] = {}

    def check_inputs(self) -> None:
        """Check every upstream artifact of the recipe before anything reads it."""
        for name, key in sorted(self.recipe.get("inputs", {}).items()):
            self.manifests[name] = check_artifact(self.input_dir(name), key, self.cache)

    def use_torch(self) -> None:
        """Before a job that imports torch only on some paths first computes with it: pin its
        threads to the rule's (``start_job(..., torch=True)`` does this for model jobs)."""
        set_torch_threads(self.threads)

    def stage_params(self, cls):
        """The stage's params dataclass (``genbench.core.stage``), rebuilt from the recipe's
        keyed params and the runtime params the plan sent beside them."""
        return cls.from_job(self.params, self.runtime)

    def has_input(self, name: str) -> bool:
        return name in self.smk.input.keys()

    def input_dir(self, name: str) -> Path:
        """The directory of the upstream artifact playing role ``name``."""
        return Path(self.smk.input[name]).parent

    def input_manifest(self, name: str) -> dict:
        if name not in self.manifests:
            self.manifests[name] = check_artifact(self.input_dir(name), self.recipe["inputs"].get(name), self.cache)
        return self.manifests[name]

    def held_out_splits(self) -> list[str]:
        """The held-out splits (val, test) whose features the recipe names ``held_out_<split>``."""
        return [name.removeprefix("held_out_") for name in self.inputs_named("held_out_")]

    def inputs_named(self, prefix: str) -> list[str]:
        """Role names starting with ``prefix`` in order (e.g. pack0, pack1)."""
        return sorted(k for k in self.smk.input.keys() if k.startswith(prefix))

    def writer(self, adopt=()) -> ArtifactWriter:
        return ArtifactWriter(self.out_dir, self.recipe, adopt=adopt, cache=self.cache)

    def dataset_info(self):
        """The DatasetInfo stored by the configure stage of this job's dataset."""
        from genbench.data.datasets import DatasetInfo

        return DatasetInfo.from_json(json.loads((self.input_dir("configure") / "dataset.json").read_text()))

    def generator_source(self) -> str:
        """The diffusers model to load: the built model's folder, or the user's id/path."""
        return self._model_source("generator")

    def text2text_source(self) -> str:
        return self._model_source("text2text")

    def _model_source(self, role: str) -> str:
        spec = self.runtime[role]
        return str(self.input_dir(role)) if spec.get("built") else spec["model"]

    def encoder_spec(self) -> dict[str, Any]:
        """The encoder spec for ``load_encoder``: the built model's saved spec, or the user's."""
        spec = self.runtime["encoder"]
        if not spec.get("built"):
            return dict(spec)
        folder = self.input_dir("encoder")
        saved = json.loads((folder / "encoder_spec.json").read_text())
        return {k: (str(folder / v) if k in ("pretrained", "config") else v) for k, v in saved.items()}


def _report_user_errors(exc_type, exc, tb) -> None:
    """A GenBenchError is the user's to fix: log its message alone, without a traceback."""
    from genbench.core.errors import GenBenchError

    if issubclass(exc_type, GenBenchError):
        logger.error(f"GenBench error: {exc}")
    else:
        sys.__excepthook__(exc_type, exc, tb)


def setup_logging(smk) -> None:
    """Send loguru's messages to the rule's log file (everything) and stderr (INFO and up);
    the log's last line names the heavy packages the job loaded (``job_kinds``)."""
    import atexit

    from genbench.workflow.job_kinds import loaded_line

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    if smk.log:
        logger.add(str(smk.log[0]), level="DEBUG", mode="w")
    sys.excepthook = _report_user_errors
    atexit.register(lambda: logger.debug(loaded_line()))


def start_job(smk, torch: bool = False) -> Job:
    """Route logs to the rule's log file (and stderr), pin torch threads, return the Job. A
    model job on the local executor first hands itself over to the warm job server
    (``genbench.workflow.warm``) and, when one takes it, exits with that run's status here."""
    from genbench.workflow.job_kinds import SCRIPT_KINDS
    from genbench.workflow.warm import CHILD_ENV, hand_over

    hand_over(SCRIPT_KINDS[smk.rule].name if smk.rule in SCRIPT_KINDS else "light")
    setup_logging(smk)
    if os.environ.get(CHILD_ENV):
        logger.debug("warm start: forked from the job server, which had loaded torch, open_clip and diffusers")
    job = Job(smk)
    if torch:
        set_torch_threads(job.threads)
    logger.info(f"{smk.rule}: {job.out_dir} ({job.threads} thread(s))")
    job.check_inputs()
    return job


def evaluation_inputs(job: Job):
    """Load the arrays an evaluation stage needs: real test features, the external set's
    features (its packs' ids selected from their feature artifacts), the text classifier, and
    where the recipe has them the full-train set (``full_train*``: every image of the train
    split, plus the packs after pack 0 of a combined set) and the paper CLIP-score inputs
    (``selection_features*`` of the same packs, ``paper_text_classifier``)."""
    from genbench.evaluation.evaluate import EvaluationInputs
    from genbench.evaluation.external import concatenate_feature_sets, load_pack_features
    from genbench.evaluation.features import load_features
    from genbench.evaluation.metrics import check_same_encoder

    info = job.dataset_info()
    packs = [job.input_dir(name) for name in job.inputs_named("pack")]
    parts = [load_pack_features(p, job.input_dir(n)) for p, n in zip(packs, job.inputs_named("features"))]
    test = load_features(job.input_dir("test_features"))
    external = concatenate_feature_sets(parts)
    sources = concatenate_feature_sets([load_features(job.input_dir(n)) for n in job.inputs_named("features")])
    check_same_encoder(test.meta, external.meta)
    full_train = None
    if full := [load_features(job.input_dir(name)) for name in job.inputs_named("full_train")]:
        full_train = concatenate_feature_sets(full + parts[1:])
    paper_clip = None
    if job.has_input("paper_text_classifier"):
        selection = [
            load_pack_features(p, job.input_dir(n)) for p, n in zip(packs, job.inputs_named("selection_features"))
        ]
        paper_clip = (concatenate_feature_sets(selection), _load_classifier(job, "paper_text_classifier"))
    return EvaluationInputs(
        dataset=info.name,
        class_names=list(info.classes),
        metric=info.metric,
        labels=job.params["labels"],
        test=test,
        external=external,
        text_classifier=_load_classifier(job, "text_classifier"),  # None for an image-only encoder
        full_train=full_train,
        paper_clip=paper_clip,
        sources=sources,
        decontaminated=_decontaminated(job, job.inputs_named("pack")),
    )


def _decontaminated(job: Job, packs: list[str]) -> int | None:
    """The retrieval hits removed as copies of val/test images, over the packs that record it
    (retrieved packs); None when none does."""
    counts = [job.input_manifest(name).get("summary", {}).get("decontaminated") for name in packs]
    counts = [c for c in counts if c is not None]
    return int(sum(counts)) if counts else None


def write_external_pack(job: Job, params, log=None) -> None:
    """The pack_generated / pack_retrieval job: K images per class of the job's image set,
    ranked by CLIP score when the recipe has the set's features and a text classifier, packed
    in the ELEVATER format (``genbench.evaluation.external.pack_external_set``)."""
    from genbench.evaluation.external import pack_external_set
    from genbench.evaluation.features import load_features

    features = load_features(job.input_dir("features")) if job.has_input("features") else None
    with job.writer() as w:
        summary = pack_external_set(
            job.input_dir("images") / "images.jsonl",
            w.dir,
            params,
            job.dataset_info(),
            root_folder=job.out_dir.name,
            features=features,
            text_classifier=_load_classifier(job, "text_classifier"),
            log=log,
        )
        upstream = job.input_manifest("images").get("summary", {})
        if "decontaminated" in upstream:  # a retrieved set: the hits removed as val/test copies
            summary["decontaminated"] = upstream["decontaminated"]
        w.summary.update(summary)


def _load_classifier(job: Job, name: str):
    import numpy as np

    return np.load(job.input_dir(name) / "text_classifier.npy") if job.has_input(name) else None


def write_rows(writer: ArtifactWriter, rows: list[dict], extra: dict | None = None) -> None:
    """Write a stage's tidy rows as metrics.csv (fixed columns) and metrics.json."""
    import csv

    from genbench.evaluation.rows import columns_of

    with open(writer.path("metrics.csv"), "w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=columns_of(rows))
        out.writeheader()
        out.writerows(rows)
    with open(writer.path("metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"rows": rows, **(extra or {})}, f, indent=2, sort_keys=True)
    writer.summary.update({r["metric"]: r["value"] for r in rows})


def check_input_unchanged(path: str, expected: dict, cache) -> Path:
    """``path`` (a data root, pool or file outside the results) after checking that its content
    is still the one the plan fingerprinted; a clear error when it changed since."""
    from genbench.core.fingerprint import content_key, fingerprint_path

    now = content_key(fingerprint_path(path, cache))
    if now != expected:
        raise GenBenchError(
            f"{path} changed after the workflow was planned (content {now.get('sha256', now['kind'])[:12]}, "
            f"planned {expected.get('sha256', expected.get('kind'))[:12]}); run the workflow again to plan "
            "the new content"
        )
    return Path(path)
