"""The generator and the T5 the workflow trains on its corpus: the CLIP text tower as a
CLIPTextModel, train_vae, train_generator and train_text2text (determinism, loading through the
users' loaders, bad input, NaN losses), on a tiny corpus with a few steps each."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from genbench.core.errors import ConfigError
from genbench.data.corpus import write_corpus
from genbench.models import train_generator as train_generator_module
from genbench.models import train_vae as train_vae_module
from genbench.models.clip_text import open_clip_text_encoder, prompt_states
from genbench.models.train_encoder import train_encoder
from genbench.models.train_generator import load_corpus_clip, min_snr_weights, train_generator
from genbench.models.train_text2text import caption_words, train_text2text
from genbench.models.train_vae import VAE_FOLDER, check_vae_config, train_vae
from genbench.models.training import TrainingError, corpus_records

CORPUS = {"images_per_digit": 3, "image_size": 32, "caption_error_rate": 0.2, "colours": ["white", "black"], "seed": 0}
ENCODER = {
    "model_config": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "steps": 2,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 0.1,
    "seed": 0,
}
VAE = {
    "image_size": 16,
    "block_out_channels": [8, 16],
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "steps": 2,
    "batch_size": 4,
    "lr": 1e-3,
    "kl_weight": 1e-6,
    "seed": 0,
}
UNET = {
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
    "pooling_heads": 2,
    "steps": 2,
    "batch_size": 4,
    "lr": 1e-3,
    "caption_dropout": 0.25,
    "min_snr_gamma": 5.0,
    "ema_decay": 0.9,
    "seed": 0,
}
T5 = {"d_model": 16, "d_ff": 32, "layers": 1, "heads": 2, "steps": 3, "batch_size": 8, "lr": 1e-3, "seed": 0}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny corpus, and a CLIP and a VAE trained on it for a few steps."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trained")
    folders = {name: root / name for name in ("corpus", "encoder", "vae")}
    for folder in folders.values():
        folder.mkdir()
    write_corpus(CORPUS, folders["corpus"])
    train_encoder(folders["corpus"], ENCODER, folders["encoder"])
    train_vae(folders["corpus"], VAE, folders["vae"])
    return folders


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the CLIP text tower as a CLIPTextModel --------------------------------------------------


def _open_clip_token_states(model, ids):
    """h = LN_final(transformer(E[ids] + P)) computed with open_clip's own modules."""
    x = model.token_embedding(ids) + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    return model.ln_final(x)


def test_the_clip_text_tower_becomes_a_clip_text_model_weight_for_weight(trained):
    import open_clip

    from genbench.models.tiny import build_tiny_tokenizer

    clip = load_corpus_clip(trained["encoder"]).eval()
    text_encoder, projection = open_clip_text_encoder(clip)
    tokenizer = build_tiny_tokenizer(trained["encoder"].parent / "tok", 16)
    prompts = ["the number 7 in bold serif type", "3", "", "a sign with a seven on it"]
    ids = tokenizer(prompts, padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids
    assert torch.equal(ids, open_clip.get_tokenizer("genbench-corpus-clip")(prompts))
    with torch.no_grad():
        ours = text_encoder(ids).last_hidden_state
        theirs = _open_clip_token_states(clip, ids)
        pooled = ours[torch.arange(len(ids)), ids.argmax(-1)] @ projection
        encoded = clip.encode_text(ids)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(pooled, encoded, atol=1e-5)
    assert torch.allclose(prompt_states(text_encoder, tokenizer, prompts), ours)
    assert not any(p.requires_grad for p in text_encoder.parameters())


# -- train_vae --------------------------------------------------------------------------------


def test_vae_training_is_byte_identical_and_saves_a_diffusers_vae(trained, tmp_path):
    from diffusers import AutoencoderKL

    summary = train_vae(trained["corpus"], VAE, tmp_path)
    assert _files(tmp_path) == _files(trained["vae"])
    vae = AutoencoderKL.from_pretrained(str(tmp_path / VAE_FOLDER))
    assert vae.config.scaling_factor == summary["scaling_factor"] > 0
    assert summary["latent_shape"] == [4, 8, 8] and summary["steps"] == 2
    with torch.no_grad():
        latent = vae.encode(torch.zeros(1, 3, 16, 16)).latent_dist.mean
    assert latent.shape == (1, 4, 8, 8)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"image_size": 6}, "training.vae.image_size"),
        ({"image_size": 12, "block_out_channels": [8, 16, 16]}, "training.vae.image_size"),
        ({"image_size": 64}, "training.vae.image_size"),
        ({"norm_num_groups": 3}, "training.vae.norm_num_groups"),
    ],
)
def test_a_vae_that_cannot_work_is_refused_naming_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_vae_config({**VAE, **change}, corpus_size=32)


def test_a_nan_vae_loss_stops_training_and_saves_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(
        train_vae_module, "corpus_pixels", lambda images, size: torch.full((len(images), 3, size, size), math.nan)
    )
    with pytest.raises(TrainingError, match=r"train_vae: the loss became nan at step 0"):
        train_vae(trained["corpus"], VAE, tmp_path)
    assert not any(tmp_path.iterdir())


# -- train_generator ----------------------------------------------------------------------------


def test_min_snr_weights_follow_the_formula():
    alphas = torch.tensor([0.99, 0.9, 0.5, 0.1])
    expected = [min(a / (1 - a), 5.0) / (a / (1 - a)) for a in alphas.tolist()]
    assert torch.allclose(min_snr_weights(alphas, torch.arange(4), 5.0), torch.tensor(expected))


@pytest.fixture(scope="module")
def generator(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("generator")
    torch.set_num_threads(1)
    summary = train_generator(trained["corpus"], trained["vae"], trained["encoder"], UNET, out)
    return out, summary


def test_the_generator_is_a_stable_diffusion_folder_the_users_loader_reads(generator):
    from genbench.generation.sampling import SamplingParams, sample_shard
    from genbench.models.generators import load_text_to_image_pipeline

    folder, summary = generator
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert {"vae", "unet", "text_encoder", "tokenizer", "scheduler"} <= set(index)
    assert summary["resolution"] == 16 and summary["context_length"] == 16
    pipe = load_text_to_image_pipeline(str(folder), scheduler="ddim")
    assert pipe.tokenizer.model_max_length == 16
    rows = [{"index": 0, "class_id": 7, "class_name": "7", "prompt": "7", "negative_prompt": None, "seed": 1}]
    stats = sample_shard(
        pipe,
        rows,
        folder.parent / "shard.tar",
        SamplingParams(
            scheduler="ddim",
            steps=2,
            guidance=7.5,
            height=16,
            width=16,
            output_size=32,
            resize_filter="bicubic",
            dtype="auto",
            shard_size=1,
            safety_checker=False,
            device="cpu",
        ),
    )
    assert stats["images"] == 1


def test_generator_training_is_byte_identical(trained, generator, tmp_path):
    folder, _ = generator
    train_generator(trained["corpus"], trained["vae"], trained["encoder"], UNET, tmp_path)
    assert _files(tmp_path) == _files(folder)


def test_the_generator_conditions_on_the_frozen_clip_text_tower(trained, generator):
    from transformers import CLIPTextModel

    folder, _ = generator
    saved = CLIPTextModel.from_pretrained(str(folder / "text_encoder"))
    converted, _ = open_clip_text_encoder(load_corpus_clip(trained["encoder"]))
    for (name, ours), theirs in zip(saved.state_dict().items(), converted.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_a_nan_generator_loss_stops_training_and_saves_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(train_generator_module, "min_snr_weights", lambda *args: torch.tensor(math.nan))
    with pytest.raises(TrainingError, match=r"train_generator: the loss became nan at step 0"):
        train_generator(trained["corpus"], trained["vae"], trained["encoder"], UNET, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "change, key",
    [
        ({"block_out_channels": [16]}, "training.generator.block_out_channels"),
        ({"norm_num_groups": 5}, "training.generator.norm_num_groups"),
        ({"caption_dropout": 1.0}, "training.generator.caption_dropout"),
    ],
)
def test_a_generator_that_cannot_work_is_refused_naming_the_key(change, key):
    from genbench.models.train_generator import check_generator_config

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_generator_config({**UNET, **change})


# -- train_text2text ----------------------------------------------------------------------------


def test_the_t5_learns_the_corpus_vocabulary_and_loads_like_a_users_checkpoint(trained, tmp_path):
    from genbench.models.text2text import generate_sentences, load_text2text

    first, second = tmp_path / "a", tmp_path / "b"
    summary = train_text2text(trained["corpus"], T5, first)
    train_text2text(trained["corpus"], T5, second)
    assert _files(first) == _files(second)
    words = caption_words([r["caption"] for r in corpus_records(trained["corpus"])])
    assert summary["vocabulary"] == len(words) + 3 and summary["steps"] == 3
    model, tokenizer = load_text2text(first)
    assert tokenizer("7").input_ids[0] != tokenizer.unk_token_id
    sentences = generate_sentences(model, tokenizer, "7", 3, seed=0)
    assert sentences and all(set(s.split()) <= set(words) for s in sentences)


def test_the_t5_pairs_each_caption_with_the_digit_it_names(trained):
    records = corpus_records(trained["corpus"])
    wrong = [r for r in records if r["named"] != r["digit"]]
    assert wrong, "the tiny corpus has captions naming another digit"
    from genbench.data.corpus import DIGIT_WORDS

    for record in records:
        words = set(record["caption"].replace(",", " ").split())
        assert {str(record["named"]), DIGIT_WORDS[record["named"]]} & words


# -- the plan ----------------------------------------------------------------------------------


def test_the_plan_trains_each_model_once_and_shares_the_clip(tmp_path):
    from test_trained_models import checked_plan, default_config

    config = default_config()
    plan = checked_plan(copy.deepcopy(config))
    stages = [n.stage for n in plan.nodes.values()]
    for stage in ("build_corpus", "train_encoder", "train_vae", "train_generator", "train_text2text"):
        assert stages.count(stage) == 1, stage
    (generator,) = plan.by_stage("train_generator")
    (encoder,) = plan.by_stage("train_encoder")
    assert generator.inputs["encoder"] is encoder and generator.inputs["vae"].stage == "train_vae"
    assert generator.params["threads"] == config["training"]["generator"]["threads"]
    assert plan.by_stage("train_vae")[0].params["threads"] == config["training"]["threads"]
    samples = plan.by_stage("sample_images")
    assert samples and all(s.inputs["generator"] is generator for s in samples)
    (corpus,) = plan.by_stage("build_corpus")
    assert corpus.params["colours"] == ["white", "black"]
    changed = copy.deepcopy(config)
    changed["training"]["vae"]["steps"] += 1
    (retrained,) = checked_plan(changed).by_stage("train_generator")
    assert retrained.key != generator.key  # a new VAE is a new generator


def test_a_vae_too_small_for_its_levels_is_refused_at_plan_time():
    from test_trained_models import checked_plan, default_config

    config = default_config()
    config["training"]["vae"]["image_size"] = 4
    with pytest.raises(ConfigError, match=r"training\.vae\.image_size: 4 px"):
        checked_plan(config)


@pytest.mark.parametrize("colours", [["white"], ["white", "mauve"]])
def test_a_palette_that_cannot_work_is_refused_naming_the_key(colours):
    from test_trained_models import checked_plan, default_config

    config = default_config()
    config["training"]["corpus"]["colours"] = colours
    with pytest.raises(ConfigError, match=r"training\.corpus\.colours"):
        checked_plan(config)


def test_the_corpus_draws_from_its_palette_only():
    from genbench.data.corpus import COLOURS, render_corpus

    palette = {COLOURS["white"], COLOURS["black"]}
    for item in render_corpus({**CORPUS, "images_per_digit": 2}):
        from io import BytesIO

        from PIL import Image

        pixels = np.asarray(Image.open(BytesIO(item.png)).convert("RGB"))
        assert tuple(int(v) for v in pixels[0, 0]) in palette
