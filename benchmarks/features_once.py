"""Benchmark: exactly one encoder forward pass per (encoder, image) over a whole demo run.

Runs the demo workflow (the embedded config, optionally reduced by ``--configfile``) in a
fresh temp directory, then reads every features artifact's MANIFEST.json under
``results/features/`` and the image index each one encoded, and checks:

1. forward passes == number of distinct (encoder, image content) pairs, content = the pixel
   hash: every image is encoded once per encoder, whichever image sets hold it. Passes are
   counted over every stage that encodes images: ``features`` (``summary.images_encoded``,
   the encoder's own counter) and ``build_pool``
   (its ``images_encoded``: 0 when the pool reuses an image set's features, as the demo's
   does). The demo's retrieved images are copies of its pool's images (the training corpus,
   or the train split): their features are taken from that image set's (``reused`` in the
   manifest). Images with identical pixels in two sets are listed as notes;
2. each (encoder, image index) has exactly one features artifact, and each artifact encoded
   exactly the rows of its index (``count`` == ``images_encoded + reused`` == index length);
3. the metric, probe and pack scripts never load an encoder (their imports, read with
   ``ast``); other scripts that import one are listed.

Prints images, forward passes, passes per image (target 1.00) and a PASS/FAIL line; exit 1 on
FAIL. ``--results DIR`` checks an existing results folder instead of running the workflow.

Run: .venv/bin/python benchmarks/features_once.py [--configfile small.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
NO_ENCODER_SCRIPTS = (
    "zeroshot_metric",
    "distribution_metrics",
    "proxy_distance",
    "elevater",
    "pack_generated",
    "pack_original",
)
ENCODER_NAMES = ("genbench.evaluation.encoders", "load_encoder", "open_clip")
# stage -> the index (in its ``images`` input) it encodes, from its recipe params
ENCODING_STAGES = {
    "features": lambda params: f"{params['split']}.jsonl",
    "build_pool": lambda params: "corpus.jsonl" if params.get("captions") == "corpus" else "train.jsonl",
}


# -- the run ---------------------------------------------------------------------------------
def absolute_paths_config(snakefile: Path, workdir: Path) -> Path:
    """A config file pointing the demo's relative data paths (descriptions) at the checkout:
    the workflow resolves them against the working directory, a temp dir here."""
    path = workdir / "absolute_paths.yaml"
    descriptions = snakefile.parent / "demo" / "descriptions.json"
    path.write_text(f"strategy_params:\n  descriptions: {{file: {json.dumps(str(descriptions))}}}\n", encoding="utf-8")
    return path


def run_demo(snakefile: Path, workdir: Path, configfile: str | None, cores: int) -> float:
    """Run the whole workflow in ``workdir``; wall seconds. Exits on failure (log tail shown)."""
    configs = [absolute_paths_config(snakefile, workdir)]
    configs += [Path(configfile).resolve()] if configfile else []
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        "--configfile",
        *map(str, configs),
    ]
    log = workdir / "snakemake.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-4000:]
        raise SystemExit(f"workflow failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return seconds


# -- reading the results ---------------------------------------------------------------------
def manifests_by_key(results: Path) -> dict[str, Path]:
    """Full artifact key -> artifact directory, for every finished artifact under ``results``."""
    found = {}
    for manifest in results.glob("*/*/*/MANIFEST.json"):
        found[json.loads(manifest.read_text(encoding="utf-8"))["key"]] = manifest.parent
    return found


def encoder_identity(recipe: dict) -> str:
    """The encoder a recipe names: its params plus the key of a built-in-plan model."""
    return json.dumps([recipe["params"].get("encoder"), recipe["inputs"].get("encoder")], sort_keys=True)


def read_index(index: Path) -> list[dict]:
    """The records of a JSON-lines image index."""
    with open(index, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def pixel_hashes(index: Path) -> list[str]:
    """sha256 of each record's decoded RGB pixels (and size), in index order."""
    from genbench.data.imageset import ImageSetReader

    with ImageSetReader(index) as reader:
        hashes = []
        for record in reader.records:
            image = reader.load_record(record)
            digest = hashlib.sha256(repr(image.size).encode() + image.tobytes()).hexdigest()
            hashes.append(digest)
    return hashes


def encoding_artifacts(results: Path) -> list[dict]:
    """One row per artifact that encoded images (features, build_pool): its dir, stage,
    encoder, index, passes reported, and the pixel hash of every image of its index."""
    by_key = manifests_by_key(results)
    rows = []
    for stage, index_name in ENCODING_STAGES.items():
        for manifest in sorted(results.glob(f"{stage}/*/*/MANIFEST.json")):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            recipe, summary = data["recipe"], data["summary"]
            images_dir = by_key.get(recipe["inputs"].get("images"))
            if images_dir is None:
                raise SystemExit(f"{manifest}: its images artifact is not under {results}")
            index = images_dir / index_name(recipe["params"])
            passes = summary.get("images_encoded", summary.get("count") if stage != "features" else None)
            rows.append(
                {
                    "dir": manifest.parent,
                    "stage": stage,
                    "encoder": encoder_identity(recipe),
                    "index": os.path.realpath(index),
                    "summary": summary,
                    "passes": int(passes or 0),
                    "images": pixel_hashes(index),
                }
            )
    return rows


# -- the checks ------------------------------------------------------------------------------
def check_counts(rows: list[dict]) -> tuple[int, int, list[str]]:
    """(distinct (encoder, image content) pairs, forward passes, problems).

    An image's content is its pixel hash: one encoder must encode each content once, whichever
    image sets hold it (the demo's retrieved images are copies of train images)."""
    problems, pairs, passes = [], set(), 0
    for row in rows:
        s, n = row["summary"], len(row["images"])
        passes += row["passes"]
        if row["stage"] == "features" or row["passes"]:  # build_pool from features encodes nothing
            pairs.update((row["encoder"], h) for h in row["images"])
        if row["stage"] == "features" and (s.get("images_encoded", 0) + s.get("reused", 0) != n or s.get("count") != n):
            problems.append(
                f"{row['dir']}: count {s.get('count')}, images_encoded {s.get('images_encoded')} + reused "
                f"{s.get('reused')}, index has {n} rows"
            )
    twice = Counter((row["encoder"], row["index"]) for row in rows if row["passes"])
    problems += [f"image set {index} encoded {n} times by one encoder" for (_, index), n in twice.items() if n > 1]
    return len(pairs), passes, problems


def repeated_images(rows: list[dict]) -> list[str]:
    """Notes: images (by pixels) that appear in more than one artifact of one encoder."""
    seen: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        label = f"{row['stage']}/{row['dir'].parent.name}/{row['dir'].name}"
        for h in set(row["images"]):
            seen.setdefault((row["encoder"], h), []).append(label)
    overlaps = Counter(tuple(sorted(v)) for v in seen.values() if len(v) > 1)
    return [f"{n} images in {' and '.join(arts)}" for arts, n in overlaps.items()]


def imported_names(script: Path) -> set[str]:
    """Every module and name a script imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
            names.update(a.name for a in node.names)
    return names


def check_scripts(scripts_dir: Path) -> list[str]:
    """Problems: a metric/probe/pack script that imports an encoder (or is missing)."""
    problems = []
    for name in NO_ENCODER_SCRIPTS:
        script = scripts_dir / f"{name}.py"
        if not script.exists():
            problems.append(f"{script} is missing")
            continue
        bad = sorted(n for n in imported_names(script) if any(n == e or n.startswith(e + ".") for e in ENCODER_NAMES))
        if bad:
            problems.append(f"{script.name} imports {bad}")
    return problems


def encoder_scripts(scripts_dir: Path) -> list[str]:
    """Every workflow script that imports an encoder (information)."""
    return sorted(
        p.stem
        for p in scripts_dir.glob("*.py")
        if any(n == e or n.startswith(e + ".") for n in imported_names(p) for e in ENCODER_NAMES)
    )


# -- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snakefile", default=str(ROOT / "Snakefile"))
    parser.add_argument("--configfile", help="a small config merged over the embedded one")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--results", help="check this results folder; do not run the workflow")
    parser.add_argument("--keep", action="store_true", help="keep the temp run directory")
    return parser.parse_args(argv)


def report(rows: list[dict], problems: list[str], scripts_dir: Path) -> int:
    """Print the figures and the verdict; the exit code."""
    pairs, passes, count_problems = check_counts(rows)
    problems = count_problems + problems
    stages = Counter(row["stage"] for row in rows)
    print(f"encoding artifacts          : {dict(stages)} ({len({r['encoder'] for r in rows})} encoder(s))")
    print(f"scripts importing an encoder: {', '.join(encoder_scripts(scripts_dir))}")
    print(f"distinct images (pixels)    : {len({h for row in rows for h in row['images']})}")
    print(f"(encoder, image content)    : {pairs}")
    print(f"encoder forward passes      : {passes}")
    ratio = passes / pairs if pairs else float("nan")
    print(f"passes per (encoder, image) : {ratio:.2f} (target 1.00)")
    f_pairs, f_passes, _ = check_counts([r for r in rows if r["stage"] == "features"])
    print(
        f"features stage alone        : {f_passes} passes / {f_pairs} (encoder, image) = "
        f"{f_passes / f_pairs if f_pairs else float('nan'):.2f}"
    )
    for problem in problems:
        print(f"  problem: {problem}")
    for note in repeated_images(rows):
        print(f"  note (same pixels in two image sets): {note}")
    ok = bool(rows) and passes == pairs and not problems
    print(
        f"{'PASS' if ok else 'FAIL'}: one encoder forward pass per (encoder, image); "
        f"no encoder in {', '.join(NO_ENCODER_SCRIPTS)}"
    )
    return 0 if ok else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    scripts_dir = Path(args.snakefile).resolve().parent / "workflow_scripts"
    if args.results:
        return report(encoding_artifacts(Path(args.results)), check_scripts(scripts_dir), scripts_dir)
    workdir = Path(tempfile.mkdtemp(prefix="genbench-features-once-"))
    seconds = run_demo(Path(args.snakefile).resolve(), workdir, args.configfile, args.cores)
    print(f"demo run: {seconds:.0f} s wall, {args.cores} cores, in {workdir}")
    code = report(encoding_artifacts(workdir / "results"), check_scripts(scripts_dir), scripts_dir)
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
