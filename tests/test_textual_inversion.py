"""Textual inversion on the tiny Stable Diffusion: only the new row learns, files reload, sampling changes."""

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.fewshot import sample_k_shot
from genbench.data.imageset import write_index
from genbench.injection.textual_inversion import (
    add_placeholder_token,
    class_token,
    image_to_tensor,
    initializer_token_id,
    load_learned_embeds,
    reference_images,
    save_learned_embeds,
    train_token,
)
from genbench.models.generators import load_text_to_image_pipeline
from genbench.models.tiny import build_tiny_stable_diffusion

torch.set_num_threads(1)
TOKEN = "<digits-three>"
TRAIN = dict(steps=4, lr=5e-3, batch_size=2, resolution=32, seed=0)


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"), seed=0)


@pytest.fixture(scope="module")
def refs():
    rng = np.random.RandomState(0)
    return [Image.fromarray((rng.rand(40, 36, 3) * 255).astype(np.uint8)) for _ in range(3)]


@pytest.fixture(scope="module")
def trained(sd_dir, refs):
    pipe = load_text_to_image_pipeline(str(sd_dir))
    before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    messages, losses = [], []
    (row,) = train_token(pipe, refs, TOKEN, None, "three", log=messages.append, history=losses, **TRAIN)
    return {
        "pipe": pipe,
        "before": before,
        "unet_before": unet_before,
        "row": row,
        "messages": messages,
        "losses": losses,
    }


def embedding_matrix(pipe):
    return pipe.text_encoder.get_input_embeddings().weight.detach()


def test_only_the_new_row_changes(trained):
    pipe, before, row = trained["pipe"], trained["before"], trained["row"]
    after = embedding_matrix(pipe)
    token_id = pipe.tokenizer.convert_tokens_to_ids(TOKEN)
    assert token_id == before.shape[0] and after.shape[0] == before.shape[0] + 1
    assert torch.equal(after[:token_id], before)  # every other row bit-identical
    init_row = before[pipe.tokenizer.encode("three", add_special_tokens=False)[0]]
    assert torch.equal(after[token_id], row) and not torch.equal(row, init_row)
    assert row.shape == (before.shape[1],) and torch.isfinite(row).all()
    assert all(torch.equal(v, trained["unet_before"][k]) for k, v in pipe.unet.state_dict().items())
    assert len(trained["losses"]) == TRAIN["steps"] and all(np.isfinite(trained["losses"]))
    assert pipe.tokenizer.tokenize(f"a photo of a {TOKEN} three")[4] == TOKEN


def test_training_is_deterministic_for_a_seed(sd_dir, refs, trained):
    (again,) = train_token(load_text_to_image_pipeline(str(sd_dir)), refs, TOKEN, None, "three", **TRAIN)
    assert torch.equal(again, trained["row"])
    (other,) = train_token(load_text_to_image_pipeline(str(sd_dir)), refs, TOKEN, None, "three", **{**TRAIN, "seed": 1})
    assert not torch.equal(other, trained["row"])


def test_saved_embedding_reloads_identically(sd_dir, trained, tmp_path):
    from safetensors.torch import load_file

    path = save_learned_embeds(tmp_path / "three", {TOKEN: trained["row"]})
    assert path.name == "learned_embeds.safetensors"
    stored = load_file(str(path))
    assert list(stored) == [TOKEN] and stored[TOKEN].shape == (1, trained["row"].shape[0])
    fresh = load_text_to_image_pipeline(str(sd_dir))
    fresh.load_textual_inversion(str(path))  # diffusers' own loader reads our file
    token_id = fresh.tokenizer.convert_tokens_to_ids(TOKEN)
    assert torch.equal(embedding_matrix(fresh)[token_id], trained["row"])
    assert torch.equal(embedding_matrix(fresh)[:token_id], trained["before"])


def _sample(pipe, prompt):
    out = pipe(
        prompt,
        num_inference_steps=2,
        guidance_scale=3.0,
        height=32,
        width=32,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    )
    return out.images[0]


def test_sampling_with_learned_token_differs(sd_dir, trained, tmp_path):
    init_row = trained["before"][trained["pipe"].tokenizer.encode("three", add_special_tokens=False)[0]]
    learned_file = save_learned_embeds(tmp_path / "learned.safetensors", {TOKEN: trained["row"]})
    initial_file = save_learned_embeds(tmp_path / "initial.safetensors", {TOKEN: init_row})
    learned, initial = load_text_to_image_pipeline(str(sd_dir)), load_text_to_image_pipeline(str(sd_dir))
    assert load_learned_embeds(learned, [learned_file]) == [TOKEN]
    load_learned_embeds(initial, [initial_file])
    prompt = f"a photo of a {TOKEN} three"
    with_learned = _sample(learned, prompt)
    np.testing.assert_array_equal(with_learned, _sample(learned, prompt))  # same seed, same image
    assert np.abs(with_learned - _sample(initial, prompt)).max() > 1e-4


def test_existing_token_is_an_error(sd_dir, refs, trained, tmp_path):
    with pytest.raises(GenBenchError, match="'<digits-three>' already exists"):
        train_token(trained["pipe"], refs, TOKEN, None, "three", **TRAIN)
    pipe = load_text_to_image_pipeline(str(sd_dir))
    with pytest.raises(GenBenchError, match="already exists"):
        train_token(pipe, refs, "<|endoftext|>", None, "three", **TRAIN)
    path = save_learned_embeds(tmp_path / "a", {TOKEN: trained["row"]})
    with pytest.raises(GenBenchError, match=f"{TOKEN}.*already exists"):
        load_learned_embeds(trained["pipe"], [path])
    copy = save_learned_embeds(tmp_path / "b", {TOKEN: trained["row"]})
    with pytest.raises(GenBenchError, match=f"{TOKEN}.*is also in"):
        load_learned_embeds(pipe, [path, copy])
    assert TOKEN not in pipe.tokenizer.get_vocab()  # nothing half-loaded


def test_load_several_tokens(sd_dir, tmp_path):
    pipe = load_text_to_image_pipeline(str(sd_dir))
    rows = {f"<digits-{n}>": torch.full((32,), float(n)) for n in range(3)}
    paths = [save_learned_embeds(tmp_path / str(n), {token: row}) for n, (token, row) in enumerate(rows.items())]
    assert load_learned_embeds(pipe, paths) == list(rows)
    for token, row in rows.items():
        assert torch.equal(embedding_matrix(pipe)[pipe.tokenizer.convert_tokens_to_ids(token)], row)
    with pytest.raises(GenBenchError, match="one token per file"):
        save_learned_embeds(tmp_path / "x", rows)


def test_initializer_falls_back_to_first_sub_token(sd_dir):
    pipe = load_text_to_image_pipeline(str(sd_dir))
    word = "xylophonistically"
    pieces = pipe.tokenizer.encode(word, add_special_tokens=False)
    assert len(pieces) > 1
    messages = []
    assert initializer_token_id(pipe.tokenizer, word, messages.append) == pieces[0]
    assert word in messages[0] and "first" in messages[0]
    assert initializer_token_id(pipe.tokenizer, "three") == pipe.tokenizer.convert_tokens_to_ids("three</w>")
    with pytest.raises(GenBenchError, match="no token"):
        initializer_token_id(pipe.tokenizer, "")
    new_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder, "<x-y>", pieces[0])
    assert torch.equal(embedding_matrix(pipe)[new_id], embedding_matrix(pipe)[pieces[0]])


def test_image_to_tensor():
    image = Image.new("RGB", (60, 30), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 30))  # left strip is cropped away
    tensor = image_to_tensor(image, 16)
    assert tensor.shape == (3, 16, 16)
    assert torch.allclose(tensor[0], torch.ones(16, 16)) and torch.allclose(tensor[2], -torch.ones(16, 16))


def test_class_token():
    assert class_token("digits", "three") == "<digits-three>"
    with pytest.raises(GenBenchError):
        class_token("digits", "two words")


# ----------------------------------------------------------------------------- references


def _index(tmp_path, labels, similarity=None):
    records = [{"id": f"img{i:02d}", "path": f"{i}.png", "label": label} for i, label in enumerate(labels)]
    if similarity is not None:
        for record, sim in zip(records, similarity):
            record["similarity"] = sim
    write_index(tmp_path / "index.jsonl", records)
    return tmp_path / "index.jsonl", records


def test_reference_images_from_original_k_shot(tmp_path):
    labels = [0, 1, 0, 2, 0, 1, 0, 2, 0]
    path, records = _index(tmp_path, labels)
    messages = []
    refs = reference_images(path, ["a", "b", "c"], 3, seed=5, log=messages.append)
    expected = {c: [records[i]["id"] for i in sample_k_shot(labels, 3, 5) if labels[i] == c] for c in range(3)}
    assert {c: [r["id"] for r in recs] for c, recs in refs["per_class"].items()} == expected
    assert [len(refs["per_class"][c]) for c in range(3)] == [3, 2, 2]
    assert refs["shortfall"] == {1: 2, 2: 2} and "'b'" in messages[0]
    with pytest.raises(GenBenchError, match="'d'"):
        reference_images(path, ["a", "b", "c", "d"], 3)


def test_reference_images_from_retrieval_hits(tmp_path):
    path, _ = _index(tmp_path, [0, 0, 0, 1], similarity=[0.2, 0.9, 0.5, 0.3])
    refs = reference_images(path, ["a", "b"], 2, source="retrieved")
    assert [r["id"] for r in refs["per_class"][0]] == ["img01", "img02"]
    assert [r["id"] for r in refs["per_class"][1]] == ["img03"] and refs["shortfall"] == {1: 1}
    plain, _ = _index(tmp_path, [0, 1])
    with pytest.raises(GenBenchError, match="similarity"):
        reference_images(plain, ["a", "b"], 1, source="retrieved")


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    from genbench.models.tiny import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl"), seed=0)


def test_sdxl_learns_the_token_in_both_text_encoders_and_reloads(sdxl_dir, refs, tmp_path):
    """As diffusers' SDXL script: the token is added to both tokenizers, both rows train
    together, every other row of both matrices stays bit-identical; the file (clip_l, clip_g,
    the token in its metadata) loads into a fresh SDXL pipeline's two towers, and sampling with
    the learned token differs from sampling with its initial rows."""
    pipe = load_text_to_image_pipeline(str(sdxl_dir))
    towers = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    before = [enc.get_input_embeddings().weight.detach().clone() for _, enc in towers]
    init = [b[tok.encode("three", add_special_tokens=False)[0]] for b, (tok, _) in zip(before, towers)]
    losses = []
    rows = train_token(pipe, refs, TOKEN, None, "three", history=losses, **TRAIN)
    assert len(rows) == 2 and len(losses) == TRAIN["steps"] and all(np.isfinite(losses))
    for (tokenizer, encoder), old, row, start in zip(towers, before, rows, init):
        after = encoder.get_input_embeddings().weight.detach()
        token_id = tokenizer.convert_tokens_to_ids(TOKEN)
        assert token_id == old.shape[0] and torch.equal(after[:token_id], old)
        assert torch.equal(after[token_id], row) and not torch.equal(row, start)
    path = save_learned_embeds(tmp_path / "three", {TOKEN: rows})
    initial = save_learned_embeds(tmp_path / "initial.safetensors", {TOKEN: tuple(init)})
    fresh, plain = load_text_to_image_pipeline(str(sdxl_dir)), load_text_to_image_pipeline(str(sdxl_dir))
    assert load_learned_embeds(fresh, [path]) == [TOKEN] == load_learned_embeds(plain, [initial])
    for (tokenizer, encoder), row in zip(
        [(fresh.tokenizer, fresh.text_encoder), (fresh.tokenizer_2, fresh.text_encoder_2)], rows
    ):
        assert torch.equal(encoder.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids(TOKEN)], row)
    prompt = f"a photo of a {TOKEN} three"
    assert np.abs(_sample(fresh, prompt) - _sample(plain, prompt)).max() > 1e-4
    sd = load_text_to_image_pipeline(str(build_tiny_stable_diffusion(tmp_path / "sd", seed=0)))
    with pytest.raises(GenBenchError, match="need two text towers"):
        load_learned_embeds(sd, [path])
