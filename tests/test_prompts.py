"""Tests for prompt strategies (genbench.generation.prompts) and the tiny text-to-text model."""

import hashlib
import json
from collections import Counter

import pytest
import torch

from genbench.core.errors import ConfigError, GenBenchError
from genbench.generation.prompts import (
    DETAIL_SUFFIX,
    GENERIC_NEGATIVES,
    STRATEGIES,
    PromptPlanParams,
    count_truncated_prompts,
    image_seed,
    make_prompt_plan,
    plan_prompts,
    sentence_prompt,
)
from genbench.models.text2text import build_tiny_text2text, generate_sentences, load_text2text

torch.set_num_threads(1)

CLASSES = ["cat", "golden retriever", "sports car"]
TEMPLATES = [f"template {i} of a {{}}." for i in range(20)]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    path = build_tiny_text2text(tmp_path_factory.mktemp("t2t"), seed=0)
    return load_text2text(path)


@pytest.fixture
def descriptions_json(tmp_path):
    path = tmp_path / "desc.json"
    path.write_text(
        json.dumps(
            {
                "cat": ["a cat on a sofa", "a sleeping cat"],
                "golden retriever": ["a golden retriever in a park"],
                "sports car": ["a red sports car"],
            }
        )
    )
    return path


def per_class_counts(plan):
    return Counter(row["class_id"] for row in plan)


def test_simple_template_rows_counts_and_seeds():
    plan = make_prompt_plan("simple_template", CLASSES, None, {"images_per_class": 5}, seed=7)
    assert per_class_counts(plan) == {0: 5, 1: 5, 2: 5}
    assert [row["index"] for row in plan] == list(range(15))
    assert plan[6] == {
        "index": 6,
        "class_id": 1,
        "class_name": "golden retriever",
        "prompt": "golden retriever",
        "negative_prompt": None,
        "seed": image_seed(7, "simple_template", 1, 1),
    }
    expected = int(hashlib.sha256(b"image:simple_template:7:1:1").hexdigest(), 16) % 2**31
    assert plan[6]["seed"] == expected
    assert len({row["seed"] for row in plan}) == 15


def test_no_two_sets_of_a_dataset_share_an_image_seed():
    """The same prompt in two strategies' sets (model_enc's T5 may write the bare class name,
    as simple_template does) gets other noise: no set holds a copy of another set's image."""
    same_prompts = [
        make_prompt_plan("simple_template", CLASSES, None, {"images_per_class": 4}, seed=0, set_name=name)
        for name in ("simple_template", "model_enc")
    ]
    assert [r["prompt"] for r in same_prompts[0]] == [r["prompt"] for r in same_prompts[1]]
    assert not {r["seed"] for r in same_prompts[0]} & {r["seed"] for r in same_prompts[1]}
    templates = ["a photo of a {}.", "a drawing of a {}."]
    tokens = {str(c): f"<t{c}>" for c in range(len(CLASSES))}
    seeds = [
        row["seed"]
        for strategy in ("simple_template", "lang_enc", "ti_original", "ti_retrieval")
        for row in plan_prompts(
            PromptPlanParams(strategy, {}, images_per_class=6, seed=0), CLASSES, templates, tokens=tokens
        )
    ]
    assert len(seeds) == 4 * 6 * len(CLASSES) == len(set(seeds))


def test_seed_of_an_image_does_not_depend_on_other_classes():
    small = make_prompt_plan("simple_template", CLASSES[:2], None, {"images_per_class": 3}, seed=1)
    large = make_prompt_plan("simple_template", CLASSES, None, {"images_per_class": 3}, seed=1)
    assert [r["seed"] for r in small] == [r["seed"] for r in large[:6]]
    other_seed = make_prompt_plan("simple_template", CLASSES, None, {"images_per_class": 3}, seed=2)
    assert [r["seed"] for r in other_seed] != [r["seed"] for r in large]


def test_lang_enc_shuffles_cuts_and_repeats_templates():
    plan = make_prompt_plan("lang_enc", CLASSES, TEMPLATES, {}, seed=3)
    assert per_class_counts(plan) == {0: 64, 1: 64, 2: 64}
    cat_prompts = [r["prompt"] for r in plan if r["class_id"] == 0]
    used = list(dict.fromkeys(cat_prompts))
    assert len(used) == 16 and all(cat_prompts.count(p) == 4 for p in used)
    assert all(p.endswith("of a cat.") for p in used)
    assert plan == make_prompt_plan("lang_enc", CLASSES, TEMPLATES, {}, seed=3)
    reshuffled = make_prompt_plan("lang_enc", CLASSES, TEMPLATES, {}, seed=4)
    assert [r["prompt"] for r in reshuffled] != [r["prompt"] for r in plan]


def test_lang_enc_cycles_when_fewer_templates_than_asked():
    plan = make_prompt_plan("lang_enc", ["cat"], TEMPLATES[:3], {"num_templates": 5, "images_per_template": 2}, 0)
    assert len(plan) == 10
    prompts = [r["prompt"] for r in plan]
    assert prompts[:6:2] == prompts[1:6:2] and len(set(prompts)) == 3 and prompts[6:] == prompts[:4]


def test_lang_enc_rejects_templates_without_placeholder():
    with pytest.raises(ConfigError, match="exactly one"):
        make_prompt_plan("lang_enc", CLASSES, ["a photo"], {}, 0)


def test_modifiers_suffix_negative_prompts_and_textual_inversion():
    params = {
        "images_per_class": 2,
        "detail_suffix": True,
        "negative_prompts": {"other_classes": 1, "generic": ["blurry"]},
        "textual_inversion": {"0": "<t0>", "1": "<t1>", "2": "<t2>"},
    }
    plan = make_prompt_plan("simple_template", CLASSES, None, params, seed=0)
    assert plan[0]["prompt"] == "a photo of a <t0> cat" + DETAIL_SUFFIX
    for row in plan:
        others, generic = row["negative_prompt"].rsplit(", ", 1)
        assert generic == "blurry" and others in CLASSES and others != row["class_name"]
    assert plan == make_prompt_plan("simple_template", CLASSES, None, params, seed=0)
    lang = make_prompt_plan(
        "lang_enc",
        CLASSES,
        TEMPLATES,
        {"textual_inversion": {1: "<t1>", 0: "<a>", 2: "<b>"}, "num_templates": 1, "images_per_template": 1},
        0,
    )
    assert lang[1]["prompt"].endswith("of a <t1> golden retriever.")
    default_neg = make_prompt_plan("simple_template", CLASSES, None, {"images_per_class": 1, "negative_prompts": {}}, 0)
    assert default_neg[0]["negative_prompt"] is None
    generic_only = make_prompt_plan(
        "simple_template", CLASSES, None, {"images_per_class": 1, "negative_prompts": {"other_classes": 0}}, 0
    )
    assert generic_only[0]["negative_prompt"] == ", ".join(GENERIC_NEGATIVES)


def test_textual_inversion_must_cover_every_class():
    with pytest.raises(ConfigError, match="sports car"):
        make_prompt_plan("simple_template", CLASSES, None, {"textual_inversion": {0: "<a>", 1: "<b>"}}, 0)


def test_descriptions_json_and_csv(descriptions_json, tmp_path):
    plan = make_prompt_plan("descriptions", CLASSES, None, {"file": str(descriptions_json), "images_per_class": 3}, 0)
    assert per_class_counts(plan) == {0: 3, 1: 3, 2: 3}
    assert [r["prompt"] for r in plan[:3]] == ["a cat on a sofa", "a sleeping cat", "a cat on a sofa"]
    csv_path = tmp_path / "desc.csv"
    csv_path.write_text('class,description\ncat,a tabby cat\n"golden retriever",a wet dog\nsports car,fast car\n')
    csv_plan = make_prompt_plan("descriptions", CLASSES, None, {"file": str(csv_path), "images_per_class": 2}, 0)
    assert [r["prompt"] for r in csv_plan] == ["a tabby cat"] * 2 + ["a wet dog"] * 2 + ["fast car"] * 2


def test_descriptions_missing_class_names_class_and_file(tmp_path):
    json_path = tmp_path / "d.json"
    json_path.write_text(json.dumps({"cat": ["a cat"], "sports car": ["a car"]}))
    with pytest.raises(GenBenchError, match=r"d\.json.*'golden retriever'"):
        make_prompt_plan("descriptions", CLASSES, None, {"file": str(json_path)}, 0)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("class,description\ncat,a cat\ngolden retriever,a dog\n")
    with pytest.raises(GenBenchError, match=r"d\.csv.*'sports car'"):
        make_prompt_plan("descriptions", CLASSES, None, {"file": str(csv_path)}, 0)


def test_descriptions_unknown_class_warns(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"cat": ["a cat"], "unicorn": ["a unicorn"]}))
    with pytest.warns(UserWarning, match="unicorn"):
        make_prompt_plan("descriptions", ["cat"], None, {"file": str(path), "images_per_class": 1}, 0)


def test_unknown_strategy_and_param_list_valid_names():
    with pytest.raises(ConfigError) as err:
        make_prompt_plan("clip_magic", CLASSES, None, {}, 0)
    assert all(name in str(err.value) for name in STRATEGIES)
    with pytest.raises(ConfigError) as err:
        make_prompt_plan("simple_template", CLASSES, None, {"num_templates": 3}, 0)
    assert "num_templates" in str(err.value) and "images_per_class" in str(err.value)


def test_model_enc_sentences_are_deduplicated_deterministic_and_name_the_class(text_model):
    model, tokenizer = text_model
    sentences = generate_sentences(model, tokenizer, "cat", 6, seed=5)
    assert 0 < len(sentences) <= 6
    assert len({" ".join(s.lower().split()) for s in sentences}) == len(sentences)
    assert sentences == generate_sentences(model, tokenizer, "cat", 6, seed=5)
    params = {"num_sentences": 4, "images_per_class": 6, "max_new_tokens": 8}
    plan = make_prompt_plan("model_enc", CLASSES, None, params, seed=1, text_model=text_model)
    assert per_class_counts(plan) == {0: 6, 1: 6, 2: 6}
    assert all(r["class_name"].lower() in r["prompt"].lower() for r in plan)
    assert plan == make_prompt_plan("model_enc", CLASSES, None, params, seed=1, text_model=text_model)
    distinct = list(dict.fromkeys(r["prompt"] for r in plan if r["class_id"] == 0))
    assert len(distinct) <= 4 and [r["prompt"] for r in plan[:6]] == [distinct[k % len(distinct)] for k in range(6)]


def test_model_enc_loads_model_from_path(tmp_path):
    path = build_tiny_text2text(tmp_path / "t2t", seed=1)
    plan = make_prompt_plan(
        "model_enc",
        ["dog"],
        None,
        {"model": str(path), "num_sentences": 2, "images_per_class": 2, "max_new_tokens": 4},
        0,
    )
    assert len(plan) == 2 and all("dog" in r["prompt"] for r in plan)


def test_sentence_prompt_rule():
    assert sentence_prompt("A Cat  sits on a mat", "cat") == "A Cat sits on a mat"
    assert sentence_prompt("sits on a mat", "cat") == "a photo of a cat, sits on a mat"
    assert sentence_prompt("", "cat") == "a photo of a cat"


def test_count_truncated_prompts(text_model):
    _, tokenizer = text_model
    plan = [{"prompt": "dog " * n} for n in (3, 10, 11, 30)]
    assert count_truncated_prompts(plan, tokenizer, max_length=10) == 3  # 10 words + </s> = 11 tokens
    assert count_truncated_prompts(plan, tokenizer, max_length=77) == 0
