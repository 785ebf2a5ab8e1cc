"""Optional W&B logging: settings, mode choice, disabled path, missing package, logged content."""

import json
import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from genbench.core.errors import ConfigError, GenBenchError
from genbench.workflow.tracking import (
    headline_metrics,
    log_results_to_wandb,
    maybe_log_results,
    resolve_mode,
    tracking_settings,
)

ENABLED = {"tracking": {"wandb": {"enabled": True}}}


@pytest.fixture
def tables(tmp_path):
    """A summary.csv and correlations.csv shaped like the aggregate step's."""
    summary = pd.DataFrame(
        {
            "dataset": ["digits"] * 3,
            "source": ["generated", "generated", "original"],
            "strategy": ["simple_template", "lang_enc", "-"],
            "shots": [5, 5, 5],
            "seed": [0, 0, 0],
            "encoder": ["tiny"] * 3,
            "linear_probe": [40.0, 50.0, 60.0],
            "zero_shot": [10.0, 10.0, 10.0],
            "gain": [30.0, 40.0, 50.0],
            "cler": [0.2, 0.4, float("nan")],
        }
    )
    correlations = pd.DataFrame(
        {
            "metric": ["cler", "fd"],
            "n": [3, 2],
            "pearson": [0.5, float("nan")],
            "spearman": [0.4, float("nan")],
            "kendall": [0.3, float("nan")],
        }
    )
    summary_csv, correlations_csv = tmp_path / "summary.csv", tmp_path / "correlations.csv"
    summary.to_csv(summary_csv, index=False)
    correlations.to_csv(correlations_csv, index=False)
    return summary_csv, correlations_csv


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.mark.parametrize(
    "config",
    [{}, {"tracking": {}}, {"tracking": {"wandb": {}}}, {"tracking": {"wandb": {"enabled": False, "mode": "online"}}}],
)
def test_tracking_is_off_by_default(config):
    assert tracking_settings(config) is None


def test_enabled_settings_fill_defaults():
    assert tracking_settings(ENABLED) == {"project": "genbench", "mode": None, "run_name": None}
    config = {"tracking": {"wandb": {"enabled": True, "project": "p", "mode": "online", "run_name": "r"}}}
    assert tracking_settings(config) == {"project": "p", "mode": "online", "run_name": "r"}


@pytest.mark.parametrize(
    "wandb_section, expected",
    [
        ({"enabled": True, "mode": "cloud"}, "tracking.wandb.mode"),
        ({"enabled": "yes"}, "tracking.wandb.enabled"),
        ({"enabled": True, "project": ""}, "tracking.wandb.project"),
        ({"enabled": True, "api_key": "secret"}, "unknown key(s) ['api_key']"),
    ],
)
def test_bad_settings_name_the_key(wandb_section, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        tracking_settings({"tracking": {"wandb": wandb_section}})


@pytest.mark.parametrize(
    "mode, env, expected, note",
    [
        (None, {}, "offline", "offline"),
        (None, {"WANDB_API_KEY": "k"}, "online", None),
        ("online", {}, "offline", "WANDB_API_KEY is not set"),
        ("online", {"WANDB_API_KEY": "k"}, "online", None),
        ("offline", {"WANDB_API_KEY": "k"}, "offline", "offline"),
        (None, {"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline", "offline"),
        (None, {"WANDB_MODE": "online"}, "offline", "WANDB_API_KEY is not set"),
    ],
)
def test_resolve_mode_goes_offline_without_a_key(mode, env, expected, note):
    got, message = resolve_mode(mode, env)
    assert got == expected
    assert (message is None) if note is None else (note in message)


def test_resolve_mode_rejects_unknown_modes():
    with pytest.raises(GenBenchError, match="'cloud'"):
        resolve_mode("cloud", {})
    with pytest.raises(GenBenchError, match="WANDB_MODE='dryrun'"):
        resolve_mode(None, {"WANDB_MODE": "dryrun"})


def test_disabled_path_imports_and_reads_nothing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # any `import wandb` would now fail
    missing = tmp_path / "no_such.csv"
    assert maybe_log_results({}, missing, missing) is None
    assert maybe_log_results({"tracking": {"wandb": {"enabled": False}}}, missing, missing) is None
    assert log_results_to_wandb(missing, missing, project="p", mode="disabled") is None


def test_missing_wandb_package_says_how_to_install(monkeypatch, tables, no_key):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(GenBenchError, match="pip install wandb"):
        maybe_log_results(ENABLED, *tables)


def test_missing_table_is_named(tmp_path, tables):
    with pytest.raises(GenBenchError, match="summary table .*nope.csv does not exist"):
        log_results_to_wandb(tmp_path / "nope.csv", tables[1], project="p")


def test_headline_metrics_values(tables):
    summary = pd.read_csv(tables[0], keep_default_na=False, na_values=[""])
    correlations = pd.read_csv(tables[1])
    metrics = headline_metrics(summary, correlations)
    assert metrics["sets"] == 3
    assert metrics["mean/linear_probe"] == pytest.approx(50.0)
    assert metrics["generated/mean_linear_probe"] == pytest.approx(45.0)
    assert metrics["original/mean_gain"] == pytest.approx(50.0)
    assert metrics["mean/cler"] == pytest.approx(0.3)
    assert "original/mean_cler" not in metrics  # NaN left out
    assert metrics["best/gain"] == 50.0
    assert metrics["corr/cler/pearson"] == 0.5 and metrics["corr/cler/kendall"] == 0.3
    assert not any(k.startswith("corr/fd") for k in metrics)


def _fake_wandb(run_dir):
    """A stand-in wandb module recording what GenBench sends it."""
    calls = {"init": None, "logged": [], "finished": False}

    class Table:
        def __init__(self, dataframe):
            self.dataframe = dataframe

    class Run:
        dir = str(run_dir / "files")
        summary = {}

        def log(self, data):
            calls["logged"].append(data)

        def finish(self):
            calls["finished"] = True

    def init(**kwargs):
        calls["init"] = kwargs
        return Run()

    module = types.SimpleNamespace(init=init, Table=Table, Run=Run)
    return module, calls


def test_logs_both_tables_and_summary_metrics(monkeypatch, tmp_path, tables, no_key):
    run_dir = tmp_path / "wandb" / "offline-run-x"
    fake, calls = _fake_wandb(run_dir)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    got = log_results_to_wandb(*tables, project="proj", run_name="demo", config={"datasets": ["digits"]})
    assert got == str(run_dir)
    assert calls["init"] == {"project": "proj", "name": "demo", "mode": "offline", "config": {"datasets": ["digits"]}}
    assert calls["finished"]
    (logged,) = calls["logged"]
    pd.testing.assert_frame_equal(
        logged["summary"].dataframe, pd.read_csv(tables[0], keep_default_na=False, na_values=[""])
    )
    assert list(logged["correlations"].dataframe["metric"]) == ["cler", "fd"]
    assert fake.Run.summary["mean/linear_probe"] == pytest.approx(50.0)
    assert fake.Run.summary["corr/cler/spearman"] == 0.4


def test_real_wandb_offline_run(monkeypatch, tmp_path, tables, no_key):
    wandb = pytest.importorskip("wandb", reason="wandb is optional and not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = log_results_to_wandb(
        *tables, project="genbench-test", run_name="offline-test", config={"datasets": ["digits"]}
    )
    assert wandb.run is None  # finished
    path = tmp_path / "wandb"
    assert run_dir.startswith(str(path)) and "offline-run-" in run_dir
    run_dir = Path(run_dir)
    assert list(run_dir.glob("run-*.wandb"))
    (summary_json,) = run_dir.glob("files/media/table/summary_*.table.json")
    (corr_json,) = run_dir.glob("files/media/table/correlations_*.table.json")
    summary = json.loads(summary_json.read_text())
    assert "linear_probe" in summary["columns"] and len(summary["data"]) == 3
    assert len(json.loads(corr_json.read_text())["data"]) == 2
