"""The "web" corpus and the CLIP trained on it: determinism, bad input, NaN losses, loading."""

import copy
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from genbench.core.errors import ConfigError
from genbench.data.corpus import DIGIT_WORDS, font_files, render_corpus, write_corpus
from genbench.models import train_encoder as train_encoder_module
from genbench.models.train_encoder import ENCODER_WEIGHTS, train_encoder
from genbench.models.training import LossCurve, TrainingError, corpus_records
from genbench.plan.build import build_plan
from genbench.plan.validate import validate_config

REPO = Path(__file__).resolve().parents[1]
CORPUS = {"images_per_digit": 4, "image_size": 32, "caption_error_rate": 0.25, "seed": 0}
TINY_ENCODER = {
    "model_config": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
    },
    "steps": 3,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 0.1,
    "seed": 0,
}


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


_PLAN_DIRS = tempfile.TemporaryDirectory(prefix="genbench-plans-")


def checked_plan(config: dict):
    """Validate and plan ``config`` over a fresh results folder, removed when the session ends."""
    config["results_dir"] = tempfile.mkdtemp(dir=_PLAN_DIRS.name)
    validate_config(config)
    return build_plan(config)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(CORPUS, out)
    return out


def test_corpus_is_seeded_and_byte_identical():
    first, second = render_corpus(CORPUS), render_corpus(CORPUS)
    assert [i.png for i in first] == [i.png for i in second]
    assert [i.caption for i in first] == [i.caption for i in second]
    other = render_corpus({**CORPUS, "seed": 1})
    assert [i.png for i in other] != [i.png for i in first]


def test_corpus_captions_name_the_digit_except_at_the_error_rate():
    items = render_corpus({**CORPUS, "images_per_digit": 60, "caption_error_rate": 0.3})
    assert sorted(np.bincount([i.digit for i in items])) == [60] * 10
    for item in items:
        words = set(re.findall(r"[a-z0-9]+", item.caption))
        assert {str(item.named), DIGIT_WORDS[item.named]} & words, item.caption
    wrong = np.mean([i.named != i.digit for i in items])
    assert 0.22 < wrong < 0.38
    assert not any(i.named != i.digit for i in render_corpus({**CORPUS, "caption_error_rate": 0.0}))


def test_corpus_is_an_image_set_too(corpus_dir):
    from genbench.data.imageset import ImageSetReader

    items = render_corpus(CORPUS)
    with ImageSetReader(corpus_dir / "corpus.jsonl") as reader:
        assert [r["caption"] for r in reader.records] == [i.caption for i in items]
        assert [reader.open_bytes(r) for r in reader.records[:5]] == [i.png for i in items[:5]]


def test_corpus_is_written_in_the_img2dataset_layout(corpus_dir):
    assert (corpus_dir / "00000.tar").is_file()
    assert (corpus_dir / "metadata" / "metadata_00000.parquet").is_file()
    records = corpus_records(corpus_dir)
    items = render_corpus(CORPUS)
    assert [r["key"] for r in records] == [i.key for i in items]
    assert [r["png"] for r in records] == [i.png for i in items]
    assert [r["digit"] for r in records] == [i.digit for i in items]


@pytest.mark.parametrize(
    "change, key",
    [
        ({"caption_error_rate": 1.0}, "training.corpus.caption_error_rate"),
        ({"images_per_digit": 0}, "training.corpus.images_per_digit"),
        ({"image_size": 8}, "training.corpus.image_size"),
    ],
)
def test_a_corpus_that_cannot_work_is_refused_at_plan_time_naming_the_key(change, key):
    config = default_config()
    config["models"]["encoder"] = {"type": "open_clip", "model": "trained"}
    config["training"]["corpus"].update(change)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        checked_plan(config)


def test_a_fonts_dir_without_fonts_is_refused_naming_the_key(tmp_path):
    config = default_config()
    config["models"]["encoder"] = {"type": "open_clip", "model": "trained"}
    config["training"]["corpus"]["fonts_dir"] = str(tmp_path)
    assert font_files(tmp_path) == []
    with pytest.raises(ConfigError, match=r"training\.corpus\.fonts_dir"):
        checked_plan(config)


def test_a_model_config_for_another_image_size_is_refused_at_plan_time():
    config = default_config()
    config["models"]["encoder"] = {"type": "open_clip", "model": "trained"}
    config["training"]["encoder"]["model_config"]["vision_cfg"]["image_size"] = 64
    with pytest.raises(ConfigError, match=r"training\.encoder\.model_config\.vision_cfg\.image_size: 64 differs"):
        checked_plan(config)


def test_trained_is_for_the_encoder_generator_and_text2text_only():
    config = default_config()
    assert all(config["models"][role]["model"] == "trained" for role in ("encoder", "generator", "text2text"))
    validate_config(config)
    config["metrics"]["extra_encoders"] = [{"type": "open_clip", "model": "trained"}]
    with pytest.raises(ConfigError, match=r"metrics\.extra_encoders\[0\]"):
        validate_config(config)


def test_the_plan_trains_one_encoder_on_one_corpus_and_pools_the_corpus():
    config = default_config()
    config["models"]["encoder"] = {"type": "open_clip", "model": "trained"}
    config["retrieval"]["pool"] = "corpus"
    plan = checked_plan(config)
    stages = [n.stage for n in plan.nodes.values()]
    assert stages.count("build_corpus") == 1 and stages.count("train_encoder") == 1
    (train,) = plan.by_stage("train_encoder")
    (pool,) = plan.by_stage("build_pool")
    assert train.inputs["corpus"].stage == "build_corpus"
    corpus_features = pool.inputs["features"]
    assert pool.inputs["images"] is train.inputs["corpus"] and pool.inputs["encoder"] is train
    assert corpus_features.params["split"] == "corpus" and corpus_features.inputs["images"] is train.inputs["corpus"]
    (retrieved,) = [n for n in plan.by_stage("features") if n.inputs["images"].stage == "retrieve"]
    assert retrieved.inputs["reuse0"] is corpus_features  # retrieved copies are never encoded again
    assert train.params["threads"] == config["training"]["threads"]
    changed = copy.deepcopy(config)
    changed["training"]["encoder"]["steps"] += 1
    (retrained,) = checked_plan(changed).by_stage("train_encoder")
    assert retrained.key != train.key


def test_loss_curve_refuses_nan_naming_stage_and_step():
    curve = LossCurve("train_encoder")
    curve.add(0, 2.5)
    with pytest.raises(TrainingError, match=r"train_encoder.*step 1"):
        curve.add(1, float("nan"))
    summary = curve.summary()
    assert summary["steps"] == 1 and summary["loss_first"] == 2.5


def test_training_is_byte_identical_and_loads_like_a_users_checkpoint(corpus_dir, tmp_path):
    from genbench.evaluation.encoders import load_encoder
    from genbench.workflow.job import set_torch_threads

    set_torch_threads(1)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    summary = train_encoder(corpus_dir, TINY_ENCODER, first)
    train_encoder(corpus_dir, TINY_ENCODER, second)
    assert (first / ENCODER_WEIGHTS).read_bytes() == (second / ENCODER_WEIGHTS).read_bytes()
    assert summary["steps"] == 3 and len(summary["loss_curve"]) == 3
    import json

    spec = json.loads((first / "encoder_spec.json").read_text())
    spec = {k: (str(first / v) if k in ("pretrained", "config") else v) for k, v in spec.items()}
    encoder = load_encoder(spec)
    assert encoder.encode_texts(["the number 7"]).shape == (1, 16)


def test_a_nan_loss_stops_training_and_saves_nothing(corpus_dir, tmp_path, monkeypatch):
    import torch

    calls = []

    def nan_at_second_step(image_emb, text_emb, logit_scale):
        calls.append(1)
        loss = (image_emb * text_emb).sum() * 0
        return loss + (float("nan") if len(calls) == 2 else 1.0)

    monkeypatch.setattr(train_encoder_module, "clip_loss", nan_at_second_step)
    torch.set_num_threads(1)
    with pytest.raises(TrainingError, match=r"train_encoder: the loss became nan at step 1"):
        train_encoder(corpus_dir, TINY_ENCODER, tmp_path)
    assert not (tmp_path / ENCODER_WEIGHTS).exists()


def test_the_model_config_must_match_the_corpus_image_size(corpus_dir, tmp_path):
    bad = copy.deepcopy(TINY_ENCODER)
    bad["model_config"]["vision_cfg"]["image_size"] = 64
    with pytest.raises(ConfigError, match=r"vision_cfg\.image_size: 64 differs"):
        train_encoder(corpus_dir, bad, tmp_path)


def test_the_corpus_is_keyed_by_the_fonts_it_draws_with(tmp_path):
    import shutil

    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for font in font_files()[:3]:
        shutil.copy(font, fonts / font.name)
    config = default_config()
    config["models"]["encoder"] = {"type": "open_clip", "model": "trained"}
    config["training"]["corpus"]["fonts_dir"] = str(fonts)

    def corpus_key():
        (node,) = checked_plan(copy.deepcopy(config)).by_stage("build_corpus")
        return node.key

    before = corpus_key()
    (fonts / "README.txt").write_text("not a font")
    (fonts / "Symbol.ttf").write_bytes(b"a font the corpus does not use")
    assert corpus_key() == before
    used = sorted(fonts.glob("*.ttf"))[0]
    used.write_bytes(used.read_bytes() + b"\0")
    assert corpus_key() != before


@pytest.mark.parametrize(
    "name, style",
    [
        ("DejaVuSans-BoldOblique.ttf", "italic bold sans-serif"),
        ("DejaVuSerif-Italic.ttf", "italic serif"),
        ("STIXGeneralBol.ttf", "bold serif"),
        ("STIXGeneralBolIta.ttf", "italic bold serif"),
        ("STIXGeneralItalic.ttf", "italic serif"),
        ("cmb10.ttf", "bold serif"),
        ("cmtt10.ttf", "typewriter"),
    ],
)
def test_captions_name_the_face_each_font_file_draws(name, style):
    from pathlib import Path

    from genbench.data.corpus import _style_of

    assert _style_of(Path(name)) == style
