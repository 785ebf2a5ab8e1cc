"""The original project's command line, ``pipeline.py --option ...``, as Snakemake targets.

    genbench pipeline --option configure,sample_images,pack_generated,elevater,zeroshot_metric,proxy_distance \\
        --dataset_name hateful-memes --language_enc lang_enc --output_dir ./work_dirs [--dry-run]

How it is translated:

- each ``--option`` names a stage (a Snakemake rule); the original's spelling ``elevator`` means
  ``elevater``;
- ``--dataset_name`` (one key or comma-separated keys) becomes the config's ``datasets``,
  ``--language_enc`` (a prompt strategy: simple_template, lang_enc, model_enc, descriptions,
  ti_original, ti_retrieval) its ``strategies`` and ``--output_dir`` its ``results_dir``. These
  three keys are written to ``<output_dir>/genbench_pipeline_config.yaml`` (kept, so you can see
  and reuse it), which is applied after any ``--configfile`` of yours: the command line wins;
- the planned artifacts of the requested stages for those datasets are Snakemake's targets, so
  Snakemake also runs whatever they need upstream and nothing after them.

A requested stage that the plan does not hold for this config (``pack_retrieval`` when
``sources`` lacks ``retrieval``, ``textual_inversion_prepare`` unless ``--language_enc`` is a
textual-inversion strategy) is *skipped with a warning naming it*; when none of the requested
stages is planned the command fails. Evaluation stages (elevater, zeroshot_metric,
proxy_distance) run for every planned source of the dataset (the original K-shot baseline
included), as the plan defines them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from genbench.core.errors import GenBenchError

# The original pipeline.py's --option values -> GenBench stage (rule) names.
OPTION_STAGES = {
    "configure": "configure",
    "textual_inversion_prepare": "textual_inversion_prepare",
    "sample_images": "sample_images",
    "pack_generated": "pack_generated",
    "pack_retrieval": "pack_retrieval",
    "elevater": "elevater",
    "elevator": "elevater",  # the original README's spelling
    "zeroshot_metric": "zeroshot_metric",
    "proxy_distance": "proxy_distance",
}

OVERLAY_NAME = "genbench_pipeline_config.yaml"

# Why a stage may be absent from the plan: shown with the warning that skips it.
_ABSENT_HINTS = {
    "pack_retrieval": "add 'retrieval' to the config's 'sources'",
    "textual_inversion_prepare": "it needs --language_enc ti_original or ti_retrieval",
    "sample_images": "'sources' needs 'generated' or 'combined'",
    "pack_generated": "'sources' needs 'generated' or 'combined'",
    "zeroshot_metric": "'sources' needs a source besides 'combined'",
    "proxy_distance": "'sources' needs a source besides 'combined'",
}


def _split_list(text: str, option: str) -> list[str]:
    """Comma-separated values, stripped, de-duplicated in order; an error when empty."""
    values = list(dict.fromkeys(v.strip() for v in str(text).split(",") if v.strip()))
    if not values:
        raise GenBenchError(f"{option}: give at least one value (comma-separated), got {text!r}")
    return values


def translate_options(option: str) -> list[str]:
    """Stage names for the original's ``--option`` value (comma-separated), in order, no repeats.

    >>> translate_options("configure,elevator")
    ['configure', 'elevater']
    """
    stages = []
    for name in _split_list(option, "--option"):
        if name not in OPTION_STAGES:
            raise GenBenchError(f"--option: unknown option {name!r}; valid: {', '.join(sorted(OPTION_STAGES))}")
        stages.append(OPTION_STAGES[name])
    return list(dict.fromkeys(stages))


def known_strategies() -> list[str]:
    """Prompt strategies a config may name (prompt builders and textual-inversion variants)."""
    from genbench.generation.prompts import STRATEGIES, TEXTUAL_INVERSION_STRATEGIES

    return sorted(set(STRATEGIES) | set(TEXTUAL_INVERSION_STRATEGIES))


def check_language_enc(language_enc: str) -> str:
    """The prompt strategy named by ``--language_enc``; an error listing the valid ones."""
    valid = known_strategies()
    if language_enc not in valid:
        raise GenBenchError(f"--language_enc: unknown prompt strategy {language_enc!r}; valid: {', '.join(valid)}")
    return language_enc


def overlay_config(dataset_name: str, language_enc: str, output_dir: str) -> dict:
    """The config keys the original command line sets: datasets, strategies, results_dir."""
    if not str(output_dir).strip():
        raise GenBenchError("--output_dir: give a folder, got an empty value")
    return {
        "datasets": _split_list(dataset_name, "--dataset_name"),
        "strategies": [check_language_enc(language_enc)],
        "results_dir": os.path.normpath(str(output_dir)),
    }


def write_overlay(overlay: dict, output_dir: str) -> Path:
    """Write the overlay to ``<output_dir>/genbench_pipeline_config.yaml`` and return its path."""
    path = Path(output_dir) / OVERLAY_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Written by `genbench pipeline` from its --dataset_name/--language_enc/--output_dir.\n"
        path.write_text(header + yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
    except OSError as err:
        raise GenBenchError(f"--output_dir: cannot write {path}: {err.strerror}") from None
    return path


def check_datasets(config: dict, datasets: list[str]) -> None:
    """Fail naming ``--dataset_name`` when a dataset is neither in the registry nor user-declared."""
    from genbench.data.datasets import get_dataset

    for name in datasets:
        try:
            get_dataset(name, config.get("user_datasets") or None)
        except GenBenchError as err:
            raise GenBenchError(f"--dataset_name: {err}") from None


def plan_targets(config: dict, stages: list[str], datasets: list[str]) -> tuple[list[str], list[str]]:
    """(manifest paths of the planned artifacts of ``stages`` x ``datasets``, stages not planned)."""
    from genbench.plan.build import build_plan

    plan = build_plan(config)
    targets, missing = [], []
    for stage in stages:
        nodes = plan.select([stage], datasets)
        if nodes:
            targets += [n.manifest for n in nodes]
        else:
            missing.append(stage)
    return targets, missing


def _warn_missing(missing: list[str], datasets: list[str]) -> None:
    for stage in missing:
        hint = _ABSENT_HINTS.get(stage)
        print(
            f"genbench pipeline: warning: stage {stage!r} is not planned for dataset(s) "
            f"{', '.join(datasets)} with this config; skipped" + (f" ({hint})" if hint else ""),
            file=sys.stderr,
        )


def pipeline_command(args) -> list[str]:
    """Write the overlay, plan, and return the snakemake command line for ``args``."""
    from genbench.plan.validate import load_run_config
    from genbench.workflow.runner import snakemake_command

    stages = translate_options(args.option)
    overlay = overlay_config(args.dataset_name, args.language_enc, args.output_dir)
    check_datasets(load_run_config(list(args.configfile)), overlay["datasets"])
    configfiles = [*args.configfile, str(write_overlay(overlay, args.output_dir))]
    config = load_run_config(configfiles)
    targets, missing = plan_targets(config, stages, overlay["datasets"])
    _warn_missing(missing, overlay["datasets"])
    if not targets:
        raise GenBenchError(
            f"--option: none of the stages {', '.join(stages)} is planned for "
            f"dataset(s) {', '.join(overlay['datasets'])} with this config"
        )
    # "--" ends snakemake's options: the --configfile list must not swallow the targets.
    extra = [*(["--dry-run"] if args.dry_run else []), "--", *targets]
    return snakemake_command(extra, args.profile, configfiles)


def cmd_pipeline(args) -> int:
    """Run the original project's ``--option`` pipeline through Snakemake."""
    cmd = pipeline_command(args)
    print("+ " + shlex.join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--option", required=True, help=f"comma-separated stages: {', '.join(OPTION_STAGES)}")
    p.add_argument("--dataset_name", default="digits", help="dataset key(s), comma-separated")
    p.add_argument(
        "--language_enc",
        default="simple_template",
        help="prompt strategy: simple_template, lang_enc, model_enc, descriptions, ti_original, ti_retrieval",
    )
    p.add_argument("--output_dir", default="./work_dirs", help="results folder (config results_dir)")
    p.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        help="config file(s) applied before the command-line keys",
    )
    p.add_argument("--profile", help="snakemake profile, e.g. profiles/slurm")
    p.add_argument("-n", "--dry-run", action="store_true", help="show the jobs, run nothing")
    p.set_defaults(func=cmd_pipeline)


def add_pipeline_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``genbench pipeline`` on the ``genbench`` command's subparsers."""
    p = subparsers.add_parser(
        "pipeline",
        help="the original pipeline.py --option command line",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m genbench.workflow.legacy --option ...``: the same command without the ``genbench`` entry."""
    parser = argparse.ArgumentParser(
        prog="genbench pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_pipeline(args)
    except GenBenchError as err:
        print(f"genbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
