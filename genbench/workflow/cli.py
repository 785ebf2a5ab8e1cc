"""The ``genbench`` command: verify and list artifacts, print targets, wrap the workflow."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from genbench.core.errors import GenBenchError
from genbench.plan.validate import load_run_config
from genbench.workflow.runner import snakemake_command


def cmd_verify(args) -> int:
    """Re-read every file below PATH and compare it with its manifest; name each bad file and its
    key, unreadable manifests included; list staging folders left by jobs. Exit 1 on any problem."""
    from genbench.core.artifacts import staging_leftovers, verify_tree

    checked, problems = verify_tree(args.path)
    for problem in problems:
        print(f"MISMATCH {problem}")
    leftovers = staging_leftovers(args.path)
    for path, dead in leftovers:
        state = "left by a job that died; the next run removes it" if dead else "a job may still be writing it"
        print(f"LEFTOVER {path} ({state})")
    changed = _changed_inputs(args.configfile) if args.inputs else []
    for line in changed:
        print(f"CHANGED {line}")
    if checked == 0:
        print(f"no artifacts (no MANIFEST.json) found under {args.path}", file=sys.stderr)
        return 2
    inputs = f", {len(changed)} changed input(s)" if args.inputs else ""
    print(f"{checked} artifact(s) checked, {len(problems)} problem(s), {len(leftovers)} leftover(s){inputs}")
    return 1 if problems or changed else 0


def _changed_inputs(configfiles: list[str]) -> list[str]:
    """Every input outside the results (data roots, model files, pools, descriptions) hashed
    again byte for byte, against the fingerprint the plan takes through the stat cache."""
    from genbench.core.fingerprint import StatCache, content_key, fingerprint_path
    from genbench.plan.build import build_plan

    plan = build_plan(load_run_config(configfiles))
    lines = []
    for path, planned in sorted(plan.fingerprints.items()):
        now = fingerprint_path(path, StatCache(None))
        if content_key(now) != content_key(planned):
            was, found = planned.get("sha256", planned.get("kind")), now.get("sha256", now.get("kind"))
            lines.append(f"{path}: planned as content {was[:12]}, its bytes now are {found[:12]} (rerun to plan them)")
    return lines


def gc_configs(configfiles: list[str]) -> list[list[str]]:
    """The configs ``genbench gc`` keeps: one per ``--configfile`` (each over config.yaml; a
    value ``base.yaml+more.yaml`` merges its files in order), or config.yaml alone."""
    return [value.split("+") for value in configfiles] or [[]]


def cmd_gc(args) -> int:
    """Remove the artifacts that none of the configs' plans references (as `dvc gc` keeps every
    workspace it is given)."""
    from genbench.core.housekeeping import (
        acquire_run_lock,
        clean_staging,
        collect_garbage,
        release_run_lock,
        remove_run_fingerprints,
    )
    from genbench.plan.build import STAGE_VERSIONS, build_plan

    configs = [load_run_config(files) for files in gc_configs(args.configfile)]
    for config in configs:
        if args.results:
            config["results_dir"] = args.results
    folders = {str(Path(c.get("results_dir", "results")).resolve()) for c in configs}
    if len(folders) > 1:
        print(f"genbench gc: the configs write to different results folders {sorted(folders)}; pass --results")
        return 2
    if args.dry_run:  # reads only: no lock, and the stat cache in memory (a read-only folder works)
        from genbench.core.fingerprint import StatCache
        from genbench.plan.build import Plan

        plans = [Plan(config, stat_cache=StatCache(None)) for config in configs]
        count, freed = collect_garbage(plans, STAGE_VERSIONS, dry_run=True)
    else:
        plans = [build_plan(config) for config in configs]
        results_dir = plans[0].results_dir
        acquire_run_lock(results_dir, purpose="genbench gc")
        try:
            count, freed = collect_garbage(plans, STAGE_VERSIONS, dry_run=False)
            freed += clean_staging(results_dir) + remove_run_fingerprints(results_dir)
        finally:
            release_run_lock(results_dir)
    verb = "would free" if args.dry_run else "freed"
    kept = len({node.dir for plan in plans for node in plan.nodes.values()})
    print(
        f"{count} unreferenced artifact(s); {verb} {freed / 1e6:.2f} MB "
        f"(kept the {kept} that the {len(plans)} config(s) reference)"
    )
    return 0


def _short_params(params: dict, width: int = 70) -> str:
    import json

    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_ls(args) -> int:
    """List artifacts with their stage, scope (dataset), key, size and main params."""
    from genbench.core.artifacts import describe_artifact, find_artifacts

    rows = [describe_artifact(p) for p in find_artifacts(args.path)]
    rows = [
        r
        for r in rows
        if (not args.stage or r["stage"] == args.stage)
        and (not args.dataset or r["scope"] == args.dataset)
        and (not args.generator or _made_by(r, args.generator))
    ]
    for r in rows:
        print(
            f"{r['stage']:<22} {r['scope']:<20} {r['key']}  {r['files']:>5} files "
            f"{r['bytes'] / 1e6:9.2f} MB  {_short_params(r['params'])}"
        )
    print(f"{len(rows)} artifact(s)")
    return 0


def _made_by(row: dict, generator: str) -> bool:
    """An artifact on disk of ``generator``'s sets: its evaluation labels name it, or its folder
    label does (``simple_template-<generator>-...``)."""
    labels = row["params"].get("labels") or {}
    return labels.get("generator") == generator or f"-{generator}-" in Path(row["path"]).name


def _plan_targets(args, tables: bool = False) -> list:
    """The manifests of the planned artifacts of the asked stages and datasets; with ``tables``,
    [the aggregate tables, the summary] after them instead."""
    from genbench.plan.build import build_plan

    plan = build_plan(load_run_config(args.configfile))
    nodes = plan.select(args.stage or (), args.dataset or (), args.generator or ())
    if not nodes:
        raise GenBenchError(
            f"no artifact of stage(s) {args.stage} for dataset(s) {args.dataset} and generator(s) {args.generator} "
            "in the plan"
        )
    if tables:
        return [plan.aggregate_manifests(), [f"{plan.results_dir}/summary.csv"]]
    return [n.manifest for n in nodes]


def cmd_targets(args) -> int:
    """Print the manifest paths of the planned artifacts of some stages / datasets."""
    print("\n".join(_plan_targets(args)))
    return 0


def cmd_run(args) -> int:
    """Run the workflow (snakemake on this checkout's Snakefile) after checking the config files
    here, so a YAML error or a missing file is one line naming it (Snakemake reads --configfile
    itself, before the Snakefile, and says neither the file nor the line)."""
    load_run_config(args.configfile)
    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    cmd = snakemake_command(extra, args.profile, args.configfile)
    print("+ " + shlex.join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def cmd_rebuild(args) -> int:
    """Recompute some stages for some datasets, then the tables after them, nothing else.

    One snakemake run per layer (artifacts, aggregate, summary): a forced artifact is rewritten
    under the same key and inputs are ancient(), so Snakemake would not rerun what is after it;
    and in one run it skips a forced job downstream of another forced job (it masks it, waiting
    for a propagation that ancient() stops)."""
    for targets in (_plan_targets(args), *_plan_targets(args, tables=True)):
        extra = ["--forcerun", *targets] + (["--dry-run"] if args.dry_run else [])
        cmd = snakemake_command(extra, args.profile, args.configfile)
        print("+ " + shlex.join(cmd), file=sys.stderr)
        code = subprocess.call(cmd)
        if code:
            return code
    return 0


def cmd_datasets(args) -> int:
    """List the registry: key, classes, metric, templates."""
    from genbench.data.datasets import get_dataset, list_datasets

    names = list_datasets()
    total = 0
    for name in names:
        info = get_dataset(name)
        total += info.num_classes
        print(f"{name:<34} {info.num_classes:>5} classes  {info.metric:<15} {len(info.templates):>3} templates")
    print(f"{len(names)} datasets, {total} classes")
    return 0


def cmd_pool_build(args) -> int:
    """Build a retrieval pool (img2dataset + clip-retrieval layout) from a GenBench image index."""
    import json

    from genbench.evaluation.encoders import load_encoder
    from genbench.retrieval.build import build_pool_from_index

    spec = json.loads(Path(args.encoder).read_text()) if Path(args.encoder).is_file() else json.loads(args.encoder)
    if args.captions.endswith(".json"):
        captions = {int(k): v for k, v in json.loads(Path(args.captions).read_text()).items()}
    else:
        template = args.captions

        def captions(record):
            return record.get("caption") or template.format(record["label"])

    info = build_pool_from_index(
        args.index, captions, args.out, load_encoder(spec, device=args.device), shard_size=args.shard_size
    )
    print(f"pool written to {args.out}: {info}")
    return 0


def cmd_profiles(args) -> int:
    from genbench.workflow.profiles import install_profiles

    for message in install_profiles(args.target):
        print(message)
    return 0


def cmd_config_doc(args) -> int:
    from genbench.plan.config_doc import render_config_doc

    sys.stdout.write(render_config_doc())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="check every artifact's files against its manifest")
    p.add_argument("path", nargs="?", default="results")
    p.add_argument(
        "--inputs", action="store_true", help="also re-hash every input outside the results (data, models, pools)"
    )
    p.add_argument("--configfile", action="append", default=[], help="with --inputs: config overriding config.yaml")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("run", help="check the config files, then run the workflow with snakemake")
    p.add_argument("--configfile", action="append", default=[], help="config overriding config.yaml")
    p.add_argument("--profile", help="snakemake profile, e.g. profiles/local or profiles/slurm")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="passed to snakemake (after --)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("install-profiles", help="make `snakemake --profile local|slurm` find this checkout's profiles")
    p.add_argument("--target", help="profile folder (default: Snakemake's user folder, ~/.config/snakemake)")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("gc", help="remove artifacts that none of the given configs references")
    p.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="a config over config.yaml whose artifacts are kept; repeat it for every config that shares "
        "the results folder (base.yaml+more.yaml: one config of several files merged)",
    )
    p.add_argument("--results", help="results folder (default: the config's results_dir)")
    p.add_argument("-n", "--dry-run", action="store_true", help="only list what would be removed")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("ls", help="list artifacts")
    p.add_argument("path", nargs="?", default="results")
    p.add_argument("--stage")
    p.add_argument("--dataset")
    p.add_argument("--generator", help="a name in `generators`: the artifacts of its sets")
    p.set_defaults(func=cmd_ls)

    for name, func, help_text in (
        ("targets", cmd_targets, "print the planned artifacts of stages/datasets"),
        ("rebuild", cmd_rebuild, "recompute stages for datasets (e.g. CLER for cifar-10)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--stage", action="append", help="stage (rule) name; repeatable")
        p.add_argument("--dataset", action="append", help="dataset key; repeatable")
        p.add_argument("--generator", action="append", help="a name in `generators`; repeatable")
        p.add_argument("--configfile", action="append", default=[], help="config overriding config.yaml")
        if name == "rebuild":
            p.add_argument("--profile", help="snakemake profile, e.g. profiles/slurm")
            p.add_argument("-n", "--dry-run", action="store_true")
        p.set_defaults(func=func)

    p = sub.add_parser("pool", help="retrieval pools")
    pool_sub = p.add_subparsers(dest="pool_command", required=True)
    p = pool_sub.add_parser("build", help="build a pool from an image index (images.jsonl / train.jsonl)")
    p.add_argument("--index", required=True, help="a GenBench JSON-lines image index")
    p.add_argument(
        "--captions",
        required=True,
        help="a JSON file {label: caption}, or a template like 'a photo of {}' (filled with the label; "
        "a record's own 'caption' field wins)",
    )
    p.add_argument(
        "--encoder",
        required=True,
        help='encoder spec as JSON or a JSON file, e.g. \'{"type": "open_clip", "model": "ViT-B-32", '
        '"pretrained": "openai"}\'',
    )
    p.add_argument("--out", required=True)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_pool_build)

    p = sub.add_parser("datasets", help="list the dataset registry")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("config-doc", help="print docs/CONFIG.md: every config key, its default and whether it is keyed")
    p.set_defaults(func=cmd_config_doc)

    from genbench.workflow.legacy import add_pipeline_parser

    add_pipeline_parser(sub)  # the original project's `pipeline.py --option ...` command line
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GenBenchError as err:
        print(f"genbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
