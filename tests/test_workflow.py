"""The Snakemake workflow end to end: plan, bad config, demo run, verify, targeted rebuild."""

import json
import pickle
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file
from workflow_helpers import (
    REPO,
    assert_jobs_loaded_only_allowed,
    job_stats,
    planned_jobs,
    quick_config,
    run_snakemake,
    write_digits_folder,
)

from genbench.core.artifacts import find_artifacts, read_manifest, verify_tree

pytestmark = pytest.mark.workflow


def test_dry_run_of_default_config_lists_every_stage(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    jobs = planned_jobs(tmp_path, config)
    for rule in (
        "build_corpus",
        "train_encoder",
        "train_vae",
        "train_generator",
        "train_text2text",
        "configure",
        "prepare",
        "fewshot",
        "prompt_plan",
        "sample_shard",
        "sample_images",
        "features",
        "text_classifier",
        "pack_generated",
        "pack_original",
        "build_pool",
        "retrieve",
        "pack_retrieval",
        "textual_inversion_prepare",
        "textual_inversion_class",
        "textual_inversion",
        "zeroshot_metric",
        "distribution_metrics",
        "proxy_distance",
        "elevater",
        "aggregate",
        "summary",
        "all",
    ):
        assert jobs[rule] >= 1, rule
    assert jobs["build_models"] == 0  # the embedded config trains every model it uses
    # simple_template, lang_enc, descriptions, model_enc, ti_original, ti_retrieval, img2img_original,
    # lora_original
    assert jobs["prompt_plan"] == 8
    assert jobs["sample_images"] == 9  # img2img_original at two strengths
    assert jobs["lora_part"] == 1 and jobs["lora"] == 1  # one adapter for the dataset, then its artifact
    assert jobs["textual_inversion_class"] == 2 * 10  # one job per class and reference source


@pytest.mark.parametrize(
    "config_text, expected",
    [
        ("threads: abc", "config key 'threads': expected"),
        ("no_such_key: 1", "unknown key(s) 'no_such_key'"),
        ("generation: {steps: 0}", "config key 'generation.steps'"),
        (
            "models: {generator: {model: /no/such/model}}",
            "config key 'models.generator.model': path /no/such/model does not exist",
        ),
        (
            "models: {encoder: {type: open_clip, model: ViT-B-32, pretrained: /no/such/weights.pt}}",
            "config key 'models.encoder.pretrained': path /no/such/weights.pt does not exist",
        ),
        ("results_dir: /proc/genbench-results", "config key 'results_dir'"),
        ("datasets: [no-such-dataset]", "unknown dataset 'no-such-dataset'"),
        ("strategies: [no_such_strategy]", "unknown prompt strategy 'no_such_strategy'"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, monkeypatch, config_text, expected):
    """In process, the checks rules/common.smk runs when the Snakefile is parsed."""
    from genbench.core.config import check_results_dir
    from genbench.core.errors import GenBenchError
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bad.yaml"
    config.write_text(config_text + "\n")
    with pytest.raises(GenBenchError) as err:
        merged = load_run_config([str(config)])
        check_results_dir(merged["results_dir"])
        build_plan(merged)
    assert expected in str(err.value)
    assert not (tmp_path / "results" / "prepare").exists()


def test_bad_config_through_snakemake_is_one_clear_message(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("generation: {steps: 2.0}\n")
    proc = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "config key 'generation.steps': expected integer, got 2.0" in output, output[-3000:]
    assert "Traceback" not in output


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The quick demo, run once, under ``protocol: paper`` with a second tiny encoder ranking
    the packs (as ViT-B/16 does there), on three datasets: digits, a user image folder of the
    ten digits, and a 2-class one whose only generated sets come from the injection strategies:
    both textual-inversion ones, both img2img ones and lora_original (``per_dataset`` strategies
    and sources)."""
    workdir = tmp_path_factory.mktemp("demo")
    classes = write_digits_folder(workdir / "folder_digits")
    two_classes = write_digits_folder(workdir / "two_digits", per_class=10, num_classes=2)
    descriptions = workdir / "my_descriptions.json"
    descriptions.write_text(json.dumps({c: [f"a handwritten {c}"] for c in classes}))
    config = quick_config(
        workdir,
        datasets=["digits", "my-digits", "two-digits"],
        protocol="paper",
        pack={"selection_encoder": {"model": "tiny", "seed": 1}},
        per_dataset={
            "my-digits": {"strategy_params": {"descriptions": {"file": str(descriptions)}}},
            "two-digits": {
                "strategies": ["ti_original", "ti_retrieval", "img2img_original", "img2img_retrieval", "lora_original"],
                "sources": ["generated", "retrieval"],
                "textual_inversion": {"ref_shot": 2, "steps": 2, "batch_size": 1},
                "img2img": {"ref_shot": 2, "strength": 0.5},
                "lora": {"ref_shot": 2, "steps": 2, "batch_size": 2, "resolution": 32, "scope": "class"},
            },
        },
        user_datasets={
            "my-digits": {
                "classes": classes,
                "templates": ["a photo of the {}."],
                "source": {"type": "folder", "path": str(workdir / "folder_digits")},
            },
            "two-digits": {
                "classes": two_classes,
                "templates": ["a photo of the {}."],
                "source": {"type": "folder", "path": str(workdir / "two_digits")},
            },
        },
    )
    run_snakemake(workdir, config)
    return workdir, config


def test_demo_writes_results_for_every_source_and_dataset(demo):
    workdir, _ = demo
    table = pd.read_csv(workdir / "results" / "summary.csv")
    combos = set(zip(table.dataset, table.source, table.strategy))
    for dataset in ("digits", "my-digits"):
        assert (dataset, "original", "-") in combos
        assert (dataset, "retrieval", "-") in combos
        for strategy in ("simple_template", "descriptions"):
            assert (dataset, "generated", strategy) in combos
            assert (dataset, "combined", strategy) in combos
    paired = ["linear_probe", "linear_probe_elevater", "zero_shot", "gain", "gain_elevater", "cler", "cler_knn_zs"]
    paired += ["fd", "fd_paper", "clip_score_100", "clip_score_paper", "pad", "pad_dann"]
    for source in ("generated", "retrieval", "original"):
        rows = table[table.source == source]
        for column in paired:
            assert rows[column].notna().all(), (source, column)
    for source in ("original", "combined"):
        assert table[table.source == source]["cler_full_train"].notna().all(), source
    combined = table[table.source == "combined"]
    assert combined["cler"].notna().all() and combined["fd"].isna().all()
    assert list(table.columns[:4]) == ["dataset", "source", "strategy", "strength"]  # two-digits' img2img sets
    assert list(table.columns[7:11]) == ["shots_actual", "linear_probe_elevater", "zero_shot", "gain_elevater"]
    for name in ("correlation.png", "gain.png", "correlations.csv"):
        assert (workdir / "results" / "report" / name).stat().st_size > 0


def test_retrieval_and_the_textual_inversion_img2img_and_lora_strategies_end_to_end(demo):
    workdir, _ = demo
    results = workdir / "results"
    table = pd.read_csv(results / "summary.csv")
    table = table[table.dataset == "two-digits"]
    rows = set(zip(table.source, table.strategy, table.strength.astype(str)))
    injected = {("generated", s, "-") for s in ("ti_original", "ti_retrieval")}
    injected |= {("generated", s, "0.5") for s in ("img2img_original", "img2img_retrieval")}
    injected |= {("generated", "lora_original", "-")}
    assert rows == injected | {("retrieval", "-", "-")}
    assert table["linear_probe"].notna().all() and table["cler"].notna().all()
    digits = pd.read_csv(results / "summary.csv")
    assert (digits[digits.dataset == "digits"].strength.astype(str) == "-").all()  # no img2img set there

    learned = sorted((results / "textual_inversion" / "two-digits").glob("*/tokens/class-*.safetensors"))
    assert len(learned) == 2 * 2  # one token per class, for each reference source
    tokens = {next(iter(load_file(path))) for path in learned}
    assert tokens == {"<two-digits-digit_0>", "<two-digits-digit_1>"}

    adapters = sorted((results / "lora" / "two-digits").glob("*/adapters/adapter-*.safetensors"))
    assert [p.name for p in adapters] == ["adapter-00000.safetensors", "adapter-00001.safetensors"]  # one per class

    plans = sorted((results / "prompt_plan" / "two-digits").glob("*/plan.jsonl"))
    with_tokens = [path for path in plans if "<two-digits-digit_" in path.read_text()]
    assert len(plans) == 5 and len(with_tokens) == 2  # the two textual-inversion plans name the tokens
    retrieved = next((results / "retrieve" / "two-digits").glob("*"))
    assert read_manifest(retrieved)["summary"]["images"] > 0


def test_demo_jobs_load_only_the_packages_their_kind_allows(demo):
    workdir, _ = demo
    scripts = assert_jobs_loaded_only_allowed(workdir / "results")
    assert {"zeroshot_metric", "pack_generated", "sample_images", "elevater", "features"} <= scripts


def test_demo_artifacts_verify_and_a_flipped_byte_is_named(demo):
    workdir, _ = demo
    checked, problems = verify_tree(workdir / "results")
    assert checked > 30 and problems == []
    features = sorted((workdir / "results" / "features" / "digits").glob("*/features.npy"))[0]
    original = features.read_bytes()
    try:
        flipped = bytearray(original)
        flipped[-1] ^= 0x01
        features.write_bytes(bytes(flipped))
        proc = subprocess.run(
            [sys.executable, "-m", "genbench.workflow.cli", "verify", str(workdir / "results")],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 1
        assert "features.npy" in proc.stdout and features.parent.name in proc.stdout
    finally:
        features.write_bytes(original)


def test_demo_rerun_has_nothing_to_do(demo):
    workdir, config = demo
    assert planned_jobs(workdir, config) == {}


def test_every_artifact_directory_is_named_by_its_recipe_key(demo):
    workdir, _ = demo
    for artifact in find_artifacts(workdir / "results"):
        # <label>-<first 12 hex digits of the key>, the label readable (k5-s0, simple_template, ...)
        label, _, short = artifact.name.rpartition("-")
        assert read_manifest(artifact)["key"].startswith(short) and len(short) == 12, artifact
        assert label == "" or not any(c in label for c in "/ \n"), artifact


def test_changing_one_datasets_cler_param_reruns_only_its_cler_jobs(demo):
    workdir, config = demo
    data = yaml.safe_load(config.read_text())
    data["per_dataset"]["my-digits"]["metrics"] = {"cler": {"knn_k": 3}}
    changed = workdir / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    jobs = planned_jobs(workdir, changed)
    assert set(jobs) == {"zeroshot_metric", "aggregate", "summary", "all"}, jobs
    assert jobs["zeroshot_metric"] == 6  # my-digits: original, retrieval, 2 generated, 2 combined


def test_rebuild_command_forces_one_stage_of_one_dataset(demo):
    workdir, config = demo
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genbench.workflow.cli",
            "targets",
            "--stage",
            "zeroshot_metric",
            "--dataset",
            "digits",
            "--configfile",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        check=True,
    )
    targets = proc.stdout.split()
    assert len(targets) == 6 and all("/zeroshot_metric/digits/" in t for t in targets)
    # forcing an artifact rewrites it under the same key, which downstream cannot see: the
    # rebuild command forces the tables after it too
    assert set(planned_jobs(workdir, config, "--forcerun", *targets)) == {"zeroshot_metric"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genbench.workflow.cli",
            "rebuild",
            "--stage",
            "zeroshot_metric",
            "--dataset",
            "digits",
            "--configfile",
            str(config),
            "--dry-run",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,
        check=True,
    )
    plans = [job_stats(part) for part in ("\n" + proc.stdout).split("\n+ ")[1:]]
    assert [set(plan) - {"all"} for plan in plans] == [{"zeroshot_metric"}, {"aggregate"}, {"summary"}], plans
    assert plans[0]["zeroshot_metric"] == 6


def test_an_extra_encoder_adds_its_own_features_and_distribution_metrics(tmp_path):
    weights = tmp_path / "inception-2015-12-05.pt"
    weights.write_bytes(pickle.dumps({}, protocol=2))  # a stand-in checkpoint: the dry run loads nothing
    config = quick_config(tmp_path, metrics={"extra_encoders": [{"type": "inception", "weights": str(weights)}]})
    (tmp_path / "base").mkdir()
    base = planned_jobs(tmp_path, quick_config(tmp_path / "base"))
    jobs = planned_jobs(tmp_path, config)
    # the extra encoder: test split + one image set per source (2 generated, retrieval, train)
    assert jobs["features"] - base["features"] == 5
    assert jobs["distribution_metrics"] == 2 * base["distribution_metrics"]
    assert jobs["zeroshot_metric"] == base["zeroshot_metric"] and jobs["elevater"] == base["elevater"]


def test_extra_encoder_path_errors_name_the_key(tmp_path):
    config = quick_config(tmp_path, metrics={"extra_encoders": [{"type": "inception", "weights": "/no/inception.pt"}]})
    proc = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert proc.returncode != 0
    assert (
        "config key 'metrics.extra_encoders[0].weights': path /no/inception.pt does not exist"
        in proc.stderr + proc.stdout
    )
