"""The original `pipeline.py --option ...` command line translated to Snakemake targets."""

import argparse
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import job_stats

from genbench.core.errors import GenBenchError
from genbench.plan.build import STAGE_VERSIONS
from genbench.plan.validate import load_run_config
from genbench.workflow.legacy import (
    OPTION_STAGES,
    OVERLAY_NAME,
    add_pipeline_parser,
    cmd_pipeline,
    overlay_config,
    pipeline_command,
    translate_options,
    write_overlay,
)

REPO = Path(__file__).resolve().parents[1]
ORIGINAL_OPTIONS = [
    "configure",
    "textual_inversion_prepare",
    "sample_images",
    "pack_generated",
    "pack_retrieval",
    "elevator",
    "zeroshot_metric",
    "proxy_distance",
]


def _args(tmp_path, option, *, dataset="digits", language_enc="simple_template", configfile=(), dry_run=True):
    parser = argparse.ArgumentParser()
    add_pipeline_parser(parser.add_subparsers(dest="command"))
    argv = [
        "pipeline",
        "--option",
        option,
        "--dataset_name",
        dataset,
        "--language_enc",
        language_enc,
        "--output_dir",
        str(tmp_path / "work_dirs"),
    ]
    if configfile:
        argv += ["--configfile", *map(str, configfile)]
    return parser.parse_args(argv + (["--dry-run"] if dry_run else []))


def _targets(cmd):
    return cmd[cmd.index("--") + 1 :]


def test_every_original_option_maps_to_a_stage():
    assert translate_options(",".join(ORIGINAL_OPTIONS)) == [
        "configure",
        "textual_inversion_prepare",
        "sample_images",
        "pack_generated",
        "pack_retrieval",
        "elevater",
        "zeroshot_metric",
        "proxy_distance",
    ]
    assert translate_options("elevator") == translate_options("elevater") == ["elevater"]
    assert set(OPTION_STAGES.values()) <= set(STAGE_VERSIONS)  # every target is a planned stage name


def test_option_list_is_stripped_and_deduplicated():
    assert translate_options(" configure , elevator,elevater,configure ") == ["configure", "elevater"]


@pytest.mark.parametrize(
    "option, expected",
    [
        ("configure,train_model", "--option: unknown option 'train_model'; valid: configure, elevater, elevator"),
        (" , ", "--option: give at least one value"),
    ],
)
def test_bad_option_is_named_with_the_valid_ones(option, expected):
    with pytest.raises(GenBenchError, match=re.escape(expected)):
        translate_options(option)


def test_overlay_config_validates_and_sets_the_three_keys(tmp_path):
    overlay = overlay_config("digits, cifar-10", "lang_enc", "./work_dirs/")
    assert overlay == {"datasets": ["digits", "cifar-10"], "strategies": ["lang_enc"], "results_dir": "work_dirs"}
    path = write_overlay(overlay, tmp_path / "out")
    assert path == tmp_path / "out" / OVERLAY_NAME
    assert yaml.safe_load(path.read_text()) == overlay
    config = load_run_config([str(path)])  # default config + overlay passes the schema
    assert config["datasets"] == ["digits", "cifar-10"] and config["strategies"] == ["lang_enc"]
    assert config["results_dir"] == "work_dirs"
    assert config["generation"]["steps"] == 20  # the rest comes from the default config


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"language_enc": "clip_templates"}, "--language_enc: unknown prompt strategy 'clip_templates'"),
        ({"dataset": "no-such-set"}, "--dataset_name: unknown dataset 'no-such-set'"),
        ({"dataset": ","}, "--dataset_name: give at least one value"),
    ],
)
def test_bad_dataset_or_strategy_is_named(tmp_path, kwargs, expected):
    with pytest.raises(GenBenchError, match=re.escape(expected)):
        pipeline_command(_args(tmp_path, "configure", **kwargs))


def test_targets_are_the_planned_manifests_of_the_requested_stages(tmp_path):
    cmd = pipeline_command(_args(tmp_path, "configure,elevator"))
    overlay = tmp_path / "work_dirs" / OVERLAY_NAME
    assert overlay.exists()
    assert cmd[cmd.index("--configfile") + 1] == str(overlay)
    assert "--dry-run" in cmd[: cmd.index("--")]
    targets = _targets(cmd)
    stages = Counter(Path(t).parts[-4] for t in targets)
    assert set(stages) == {"configure", "elevater"} and stages["configure"] == 1
    assert all(t.startswith(str(tmp_path / "work_dirs")) and t.endswith("/MANIFEST.json") for t in targets)


def test_command_line_keys_win_over_the_users_configfile(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("strategies: [lang_enc]\nresults_dir: elsewhere\nfewshot: {shots: [3], seeds: [0]}\n")
    cmd = pipeline_command(_args(tmp_path, "pack_generated", configfile=[mine]))
    start = cmd.index("--configfile") + 1
    assert cmd[start : start + 2] == [str(mine), str(tmp_path / "work_dirs" / OVERLAY_NAME)]
    config = load_run_config(cmd[start : start + 2])
    assert config["strategies"] == ["simple_template"] and config["fewshot"]["shots"] == [3]
    assert len(_targets(cmd)) == 1  # one strategy x one shot count


def test_unplanned_stage_is_skipped_with_a_warning(tmp_path, capsys):
    mine = tmp_path / "mine.yaml"
    mine.write_text("sources: [original]\n")
    cmd = pipeline_command(_args(tmp_path, "sample_images,elevator", configfile=[mine]))
    err = capsys.readouterr().err
    assert "stage 'sample_images' is not planned for dataset(s) digits" in err and "skipped" in err
    assert {Path(t).parts[-4] for t in _targets(cmd)} == {"elevater"}
    with pytest.raises(GenBenchError, match="none of the stages sample_images, pack_generated is planned"):
        pipeline_command(_args(tmp_path, "sample_images,pack_generated", configfile=[mine]))


def test_parser_registers_the_pipeline_command():
    parser = argparse.ArgumentParser()
    add_pipeline_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pipeline", "--option", "configure"])
    assert args.func is cmd_pipeline
    assert (args.dataset_name, args.language_enc, args.output_dir, args.dry_run) == (
        "digits",
        "simple_template",
        "./work_dirs",
        False,
    )


def test_dry_run_plans_the_requested_rules(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genbench.workflow.legacy",
            "--option",
            "configure,sample_images,elevater",
            "--dataset_name",
            "digits",
            "--language_enc",
            "simple_template",
            "--output_dir",
            "work_dirs",
            "--dry-run",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    jobs = job_stats(text)
    for rule in ("configure", "sample_images", "elevater"):
        assert jobs[rule] >= 1, rule
    assert jobs["configure"] == 1 and jobs["sample_images"] == 1  # one strategy
    assert "aggregate" not in jobs and "summary" not in jobs  # nothing after the requested stages
    assert (tmp_path / "work_dirs" / OVERLAY_NAME).exists()
    assert not (tmp_path / "work_dirs" / "configure").exists()  # a dry run builds nothing


def test_textual_inversion_prepare_is_planned_only_for_a_ti_strategy(tmp_path, capsys):
    cmd = pipeline_command(_args(tmp_path, "textual_inversion_prepare,configure"))
    assert "stage 'textual_inversion_prepare' is not planned" in capsys.readouterr().err
    assert {Path(t).parts[-4] for t in _targets(cmd)} == {"configure"}
    cmd = pipeline_command(_args(tmp_path, "textual_inversion_prepare", language_enc="ti_original"))
    assert {Path(t).parts[-4] for t in _targets(cmd)} == {"textual_inversion_prepare"}
