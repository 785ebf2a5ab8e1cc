"""Generators and swept sampling settings as axes of the plan, and as columns of the tables."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genbench.core.errors import ConfigError
from genbench.evaluation.rows import ROW_COLUMNS, columns_of
from genbench.plan.build import build_plan
from genbench.plan.validate import load_run_config
from genbench.report.tables import collect_rows, results_table

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "encoder": {"type": "open_clip", "model": "tiny"},
    "generator": {"model": "tiny"},
    "text2text": {"model": "tiny"},
}


def _plan(tmp_path, monkeypatch, **overrides):
    import yaml

    monkeypatch.chdir(REPO)
    config = {
        "results_dir": str(tmp_path / "results"),
        "models": TINY,
        "retrieval": {"pool": "train_split"},
        "strategies": ["simple_template", "ti_original"],
        "sources": ["generated", "original", "combined"],
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_plan(load_run_config([str(path)]))


def test_two_generators_by_two_guidance_scales_plan_one_set_each(tmp_path, monkeypatch):
    plan = _plan(
        tmp_path,
        monkeypatch,
        generators={"small": {"model": "tiny"}, "other": {"model": "tiny", "seed": 1, "height": 32, "width": 32}},
        generation={"guidance": [2.0, 7.5]},
    )
    stages = Counter(node.stage for node in plan.nodes.values())
    assert stages["sample_images"] == 2 * 2 * 2  # strategies x generators x guidance scales
    assert stages["textual_inversion"] == 2  # one per generator: guidance does not enter it
    assert stages["prompt_plan"] == 1 + 2  # simple_template's plan is shared; ti_original's names a generator's tokens
    assert stages["build_models"] == 2 + 1  # the two tiny generators, and the encoder
    labels = [n.params["labels"] for n in plan.by_stage("elevater") if n.params["labels"]["source"] == "generated"]
    assert sorted((lb["strategy"], lb["generator"], lb["guidance"]) for lb in labels) == sorted(
        (s, g, w) for s in ("simple_template", "ti_original") for g in ("small", "other") for w in (2.0, 7.5)
    )
    folders = [n.folder for n in plan.by_stage("sample_images")]
    assert len(set(folders)) == 8 and any(f.startswith("simple_template-other-g2-") for f in folders)
    other = next(n for n in plan.by_stage("sample_images") if n.folder.startswith("simple_template-other-g7.5"))
    assert (other.params["height"], other.params["guidance"]) == (32, 7.5)  # the generator's override
    originals = [n for n in plan.by_stage("elevater") if n.params["labels"]["source"] == "original"]
    assert len(originals) == 1 and "generator" not in originals[0].params["labels"]  # not per generator


def test_equal_recipes_share_one_artifact_across_the_axes(tmp_path, monkeypatch):
    plan = _plan(
        tmp_path,
        monkeypatch,
        generators={"a": {"model": "tiny"}, "b": {"model": "tiny"}},  # the same model twice
        strategies=["simple_template"],
    )
    assert len(plan.by_stage("sample_images")) == 1  # one set, made once
    generated = [n for n in plan.by_stage("elevater") if n.params["labels"]["source"] == "generated"]
    assert sorted(n.params["labels"]["generator"] for n in generated) == ["a", "b"]  # reported under both names


def test_a_config_without_axes_has_no_axis_labels(tmp_path, monkeypatch):
    plan = _plan(tmp_path, monkeypatch)
    for node in plan.by_stage("elevater"):
        assert set(node.params["labels"]) == {"source", "strategy", "shots", "seed"}


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"generation": {"guidance": []}}, "generation.guidance"),
        ({"generators": {"bad name": {"model": "tiny"}}}, "generators"),
        ({"generators": {"x": {"model": "./missing-folder"}}}, "generators.x.model"),
    ],
)
def test_bad_axes_are_refused_naming_the_key(tmp_path, monkeypatch, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _plan(tmp_path, monkeypatch, **overrides)


def test_rows_and_tables_carry_the_axis_columns(tmp_path):
    base = {"dataset": "digits", "shots": 5, "seed": 0, "encoder": "tiny", "stage": "elevater"}
    with_axes = [
        {
            **base,
            "source": "generated",
            "strategy": "simple_template",
            "generator": g,
            "guidance": w,
            "metric": m,
            "value": v,
        }
        for g, w, m, v in [("a", 2.0, "linear_probe", 50.0), ("a", 7.5, "linear_probe", 40.0)]
    ]
    without = [{**base, "source": "original", "strategy": "-", "metric": "linear_probe", "value": 60.0}]
    assert columns_of(with_axes)[:5] == ["dataset", "source", "strategy", "generator", "guidance"]
    assert columns_of(without) == list(ROW_COLUMNS)  # no axis column
    paths = []
    for i, rows in enumerate((with_axes, without)):
        path = tmp_path / f"m{i}.csv"
        pd.DataFrame(rows, columns=columns_of(rows)).to_csv(path, index=False)
        paths.append(path)
    table = results_table(collect_rows(paths))
    assert list(table.columns[:5]) == ["dataset", "source", "strategy", "generator", "guidance"]
    assert len(table) == 3
    original = table[table.source == "original"].iloc[0]
    assert (original.generator, original.guidance) == ("-", "-")


SECOND_ENCODER = {"type": "open_clip", "model": "tiny", "seed": 1}
THREE_FAMILIES = {
    "sd": {"model": "tiny"},
    "sdxl": {"model": "tiny", "pipeline": "sdxl"},
    "sd3": {"model": "tiny", "pipeline": "sd3", "scheduler": None},  # flow matching: its own scheduler
}
PAIRED_ROWS = {  # the paper's columns, and the sources whose rows carry them (combined sets,
    # six more evaluations here, are left to the unit tests of tests/test_protocol.py)
    "cler_full_train": ("original",),
    "cler_knn_zs": ("original", "generated", "retrieval"),
    "fd_paper": ("original", "generated", "retrieval"),
    "clip_score_paper": ("original", "generated", "retrieval"),
    "pad_dann": ("original", "generated", "retrieval"),
    "linear_probe_elevater": ("original", "generated", "retrieval"),
    "gain_elevater": ("original", "generated", "retrieval"),
}


@pytest.mark.workflow
def test_a_paper_protocol_run_over_sd_sdxl_sd3_and_two_guidance_scales(tmp_path, monkeypatch):
    """One run serves three checks: each pipeline family (tiny SD, SDXL with two text encoders,
    SD3's MMDiT with flow matching and three text encoders, each built in code and saved with
    ``save_pretrained``) samples through the workflow; each (generator, guidance) set is made
    and reported once; and ``protocol: paper`` runs end to end, its packs ranked by a second
    encoder (the paper's ViT-B/16 beside the ViT-B/32 features; here a second tiny CLIP), every
    paired column of docs/PROTOCOL.md present and finite."""
    from workflow_helpers import planned_jobs, quick_config, run_snakemake

    config = quick_config(
        tmp_path,
        protocol="paper",
        pack={"selection_encoder": SECOND_ENCODER},
        generators=THREE_FAMILIES,
        generation={"guidance": [2.0, 7.5], "images_per_class": 2, "shard_size": 20},
        fewshot={"shots": [2], "seeds": [0]},
        strategies=["simple_template"],
        sources=["generated", "original", "retrieval"],
    )
    monkeypatch.chdir(tmp_path)
    plan = build_plan(load_run_config([str(config)]))
    for pack in plan.by_stage("pack_generated"):
        assert pack.inputs["features"].params["encoder"]["seed"] == 1  # ranked by the second encoder
    assert {n.params["encoder"].get("seed") for n in plan.by_stage("features")} == {None, 1}
    planned = planned_jobs(tmp_path, config)
    assert planned["sample_images"] == 6 and planned["prompt_plan"] == 1 and planned["pack_generated"] == 6
    assert planned["build_models"] == 3 + 2  # three generators, two encoders
    run_snakemake(tmp_path, config)
    builds = [
        json.loads(p.read_text()) for p in (tmp_path / "results" / "build_models").glob("generator/*/MANIFEST.json")
    ]
    assert sorted(b["summary"].get("pipeline", "sd") for b in builds) == ["sd", "sd3", "sdxl"]
    table = pd.read_csv(tmp_path / "results" / "summary.csv", keep_default_na=False)
    assert list(table.columns[:5]) == ["dataset", "source", "strategy", "generator", "guidance"]
    generated = table[table.source == "generated"]
    assert sorted(zip(generated.generator, generated.guidance.astype(float))) == [
        (g, w) for g in ("sd", "sd3", "sdxl") for w in (2.0, 7.5)
    ]
    assert generated.linear_probe.nunique() > 1  # six different sets, not one reported six times
    assert table[table.source == "original"].generator.tolist() == ["-"]
    written = {
        c
        for c in table.columns
        if c in ("cler_full_train", "cler_knn_zs") or c.endswith(("_paper", "_dann", "_elevater"))
    }
    assert written == set(PAIRED_ROWS)  # the paired columns of summary.csv: docs/PROTOCOL.md names each
    for column, sources in PAIRED_ROWS.items():
        values = pd.to_numeric(table[table.source.isin(sources)][column], errors="coerce")
        assert len(values) and values.notna().all() and np.isfinite(values).all(), column
    assert planned_jobs(tmp_path, config) == {}


def test_targets_select_one_generators_artifacts(tmp_path, monkeypatch):
    plan = _plan(
        tmp_path,
        monkeypatch,
        generators={"small": {"model": "tiny"}, "other": {"model": "tiny", "seed": 1}},
        strategies=["simple_template"],
    )
    samples = plan.select(["sample_images"], generators=["other"])
    assert len(samples) == 1 and samples[0].folder.startswith("simple_template-other-")
    cler = plan.select(["zeroshot_metric"], generators=["small"])
    assert cler and all(n.params["labels"]["generator"] == "small" for n in cler)
    with pytest.raises(ConfigError, match="unknown generator"):
        plan.select(generators=["sdxl"])


def _load(tmp_path, config):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_run_config([str(path)])


def test_textual_inversion_on_a_pipeline_without_it_is_refused_naming_both(tmp_path):
    config = {
        "generators": {"sd": {"model": "tiny"}, "sd3": {"model": "tiny", "pipeline": "sd3", "scheduler": None}},
        "strategies": ["simple_template", "ti_original"],
    }
    with pytest.raises(
        ConfigError,
        match=r"generators.sd3': prompt strategy 'ti_original' cannot run on generator 'sd3' \(StableDiffusion3",
    ):
        _load(tmp_path, config)


def test_a_noise_prediction_scheduler_on_a_flow_matching_pipeline_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"generators.sd3.scheduler': scheduler 'ddim' predicts noise.*flow matching"):
        _load(tmp_path, {"generators": {"sd3": {"model": "tiny", "pipeline": "sd3"}}})
    single = {
        "models": {"generator": {"model": "tiny", "pipeline": "sd3"}},
        "generation": {"scheduler": ["ddim", None]},
    }
    with pytest.raises(ConfigError, match=r"'generation.scheduler': scheduler 'ddim'.*set generation.scheduler: null"):
        _load(tmp_path, single)


def test_a_pipeline_family_is_read_from_a_local_folders_model_index(tmp_path):
    from genbench.models.families import family

    folder = tmp_path / "my-sd3"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusion3Pipeline"}')
    cls, fam = family({"model": str(folder)})
    assert cls == "StableDiffusion3Pipeline" and fam.flow_matching and not fam.textual_inversion
    assert family({"model": "some-org/not-cached-anywhere"}) == (None, None)  # not checkable offline
    with pytest.raises(ConfigError, match=r"models.generator.pipeline': pipeline picks a tiny generator"):
        _load(tmp_path, {"models": {"generator": {"model": str(folder), "pipeline": "sdxl"}}})


def test_each_tiny_pipeline_is_its_own_build_and_sd_keeps_its_key(tmp_path, monkeypatch):
    plan = _plan(
        tmp_path,
        monkeypatch,
        generators={
            "sd": {"model": "tiny"},
            "sdxl": {"model": "tiny", "pipeline": "sdxl"},
            "sd3": {"model": "tiny", "pipeline": "sd3", "scheduler": None},
        },
        strategies=["simple_template"],
        sources=["generated"],
    )
    builds = {
        n.params.get("pipeline", "sd"): n for n in plan.by_stage("build_models") if n.params["kind"] == "tiny_generator"
    }
    assert sorted(builds) == ["sd", "sd3", "sdxl"]
    assert "pipeline" not in builds["sd"].params  # keyed only when not the default: old keys hold
    samples = {n.folder.split("-")[1]: n for n in plan.by_stage("sample_images")}
    assert samples["sd3"].params["scheduler"] is None and samples["sd"].params["scheduler"] == "ddim"
