"""Prompt strategies: turn a dataset's classes into a deterministic *prompt plan*.

A prompt plan is a list of rows, class-major (all images of class 0, then class 1, ...)::

    {"index": i, "class_id": c, "class_name": name, "prompt": text,
     "negative_prompt": text or None, "seed": s}

``index`` is the row's position in the plan. ``seed`` is the image's own sampling seed,
derived from (configured strategy name, base seed, class id, image index within the class)
with sha256, so an image's seed never depends on the other classes, the strategy's row order
or Python's ``hash()``. The strategy's name is part of it: two strategies that write the same
prompt for an image (``model_enc``'s T5 may return the bare class name, as
``simple_template`` does) still draw different noise, so no generated set holds a copy of
another set's image and every generated image is encoded once.

Strategies (``STRATEGIES``) and the number of rows each makes per class:

- ``simple_template``: the class name alone; ``images_per_class`` rows (default 64).
- ``lang_enc``: the dataset's CLIP templates, shuffled once with the seed and cut to
  ``num_templates`` (default 16). Row k of a class uses template
  ``(k // images_per_template) % len(selected)``. Rows per class: ``images_per_class`` if
  given, else ``num_templates * images_per_template`` (default 16 * 4 = 64). With fewer
  templates than ``num_templates`` the selected templates are cycled, so the count per
  class is always the same.
- ``model_enc``: ``num_sentences`` (default 16) sentences per class from a local
  text-to-text model (``text_model=(model, tokenizer)`` or ``params["model"]``, a model id
  or path), deduplicated, cycled to ``images_per_class`` (default 64). A sentence that
  contains the class name (case-insensitive) is the prompt; otherwise the prompt is
  ``"a photo of a {class}, {sentence}"`` (so every prompt names its class).
- ``descriptions``: sentences from ``params["file"]`` (JSON ``{class_name: [sentences]}`` or
  CSV with columns ``class,description``), used as written, cycled to ``images_per_class``
  (default 64). A class missing from the file is an error; unknown classes warn.

Injection strategies sample with a base strategy's prompts (``base``, default
simple_template): ``ti_original`` / ``ti_retrieval`` add a learned token per class
(``textual_inversion`` below); ``img2img_original`` / ``img2img_retrieval`` give every row the
reference image it starts from (``with_references``); ``lora_original`` / ``lora_retrieval``
sample the base strategy's prompts from the generator with the dataset's LoRA loaded.

Modifiers, accepted by every strategy:

- ``textual_inversion``: ``{class_id: token}``. simple_template prompts become
  ``"a photo of a {token} {class}"``; lang_enc templates are filled with
  ``"{token} {class}"``; for model_enc/descriptions the first occurrence of the class name
  becomes ``"{token} {class}"``, or ``"a photo of a {token} {class}, "`` is prepended.
- ``detail_suffix``: ``True`` appends ``", highly detailed, hires, 8k, sharp focus"``.
- ``negative_prompts``: ``{"other_classes": n, "generic": [...]}``: per class, a seeded
  sample of n other class names followed by the generic list (default ``GENERIC_NEGATIVES``),
  joined with ", ".
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

from genbench.core.errors import ConfigError, GenBenchError
from genbench.core.stage import StageParams, keyed, runtime

DETAIL_SUFFIX = ", highly detailed, hires, 8k, sharp focus"
GENERIC_NEGATIVES = ["blurry", "low quality", "cartoon", "text", "watermark"]
DEFAULT_IMAGES_PER_CLASS = 64
MODIFIER_KEYS = {"detail_suffix", "negative_prompts", "textual_inversion"}
# Textual-inversion strategies -> where their reference images come from; each samples with a
# base strategy (params["base"], default simple_template) plus the learned class tokens.
TEXTUAL_INVERSION_STRATEGIES = {"ti_original": "original", "ti_retrieval": "retrieval"}
# Real-guided (img2img) strategies -> where their reference images come from; each samples with
# a base strategy's prompts (params["base"], default simple_template), every image starting from
# a noised reference image of its class instead of pure noise.
IMG2IMG_STRATEGIES = {"img2img_original": "original", "img2img_retrieval": "retrieval"}
# Few-shot LoRA strategies (as DataDream) -> where the images their adapter trains on come from;
# each samples with a base strategy's prompts from the generator with the dataset's LoRA loaded.
LORA_STRATEGIES = {"lora_original": "original", "lora_retrieval": "retrieval"}
# the strategies that bring a dataset's own images in, and sample with a base strategy's prompts
INJECTION_STRATEGIES = {**TEXTUAL_INVERSION_STRATEGIES, **IMG2IMG_STRATEGIES, **LORA_STRATEGIES}


def stable_int(*parts) -> int:
    """A stable non-negative int < 2**31 from the parts (sha256 of their ':'-joined text)."""
    text = ":".join(str(part) for part in parts)
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 2**31


def image_seed(base_seed: int, strategy: str, class_id: int, image_index: int) -> int:
    """The sampling seed of image ``image_index`` of class ``class_id`` in the set of the
    configured strategy ``strategy``."""
    return stable_int("image", strategy, base_seed, class_id, image_index)


def cycle_to(items: list, count: int) -> list:
    """``items`` repeated in order until ``count`` long (error if ``items`` is empty)."""
    if not items:
        raise GenBenchError("cannot cycle an empty list of prompts")
    return [items[k % len(items)] for k in range(count)]


def _positive_int(params: dict, key: str, default: int, strategy: str) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"prompt strategy {strategy!r}: param {key!r} must be a positive int, got {value!r}")
    return value


def _contains_name(text: str, class_name: str) -> bool:
    return class_name.lower() in text.lower()


def _insert_token(text: str, class_name: str, token: str) -> str:
    """Put ``token`` before the first occurrence of the class name, or prepend a phrase."""
    match = re.search(re.escape(class_name), text, flags=re.IGNORECASE)
    if match is None:
        return f"a photo of a {token} {class_name}, {text}"
    return f"{text[: match.start()]}{token} {text[match.start() :]}"


# ---------------------------------------------------------------- strategies
# Each strategy returns, per class, the list of prompt texts (one per image).


def _simple_template(classes, templates, params, seed, text_model, tokens):
    count = _positive_int(params, "images_per_class", DEFAULT_IMAGES_PER_CLASS, "simple_template")
    result = []
    for class_id, name in enumerate(classes):
        token = tokens.get(class_id)
        prompt = name if token is None else f"a photo of a {token} {name}"
        result.append([prompt] * count)
    return result


def select_templates(templates: list[str], num_templates: int, seed: int) -> list[str]:
    """The dataset's templates shuffled with ``seed`` (random.Random) and cut to ``num_templates``."""
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ConfigError(f"template {template!r} must be a string with exactly one '{{}}'")
    shuffled = list(templates)
    random.Random(stable_int("lang_enc", seed)).shuffle(shuffled)
    return shuffled[:num_templates]


def _lang_enc(classes, templates, params, seed, text_model, tokens):
    if not templates:
        raise ConfigError("prompt strategy 'lang_enc' needs the dataset's templates, got none")
    num_templates = _positive_int(params, "num_templates", 16, "lang_enc")
    per_template = _positive_int(params, "images_per_template", 4, "lang_enc")
    count = _positive_int(params, "images_per_class", num_templates * per_template, "lang_enc")
    selected = select_templates(templates, num_templates, seed)
    result = []
    for class_id, name in enumerate(classes):
        token = tokens.get(class_id)
        subject = name if token is None else f"{token} {name}"
        result.append([selected[(k // per_template) % len(selected)].format(subject) for k in range(count)])
    return result


def sentence_prompt(sentence: str, class_name: str) -> str:
    """A model_enc prompt: the sentence if it names the class, else 'a photo of a {class}, {sentence}'."""
    sentence = " ".join(sentence.split())
    if _contains_name(sentence, class_name):
        return sentence
    if not sentence:
        return f"a photo of a {class_name}"
    return f"a photo of a {class_name}, {sentence}"


def _resolve_text_model(params, text_model):
    if text_model is not None:
        return text_model
    if not params.get("model"):
        raise ConfigError("prompt strategy 'model_enc' needs params['model'] (a text-to-text model id or path)")
    from genbench.models.text2text import load_text2text

    return load_text2text(params["model"])


def _model_enc(classes, templates, params, seed, text_model, tokens):
    from genbench.models.text2text import generate_sentences

    num_sentences = _positive_int(params, "num_sentences", 16, "model_enc")
    count = _positive_int(params, "images_per_class", DEFAULT_IMAGES_PER_CLASS, "model_enc")
    max_new_tokens = _positive_int(params, "max_new_tokens", 24, "model_enc")
    model, tokenizer = _resolve_text_model(params, text_model)
    result = []
    for class_id, name in enumerate(classes):
        sentences = generate_sentences(
            model,
            tokenizer,
            name,
            num_sentences,
            stable_int("model_enc", seed, class_id),
            max_new_tokens=max_new_tokens,
        )
        prompts = [sentence_prompt(s, name) for s in sentences] or [f"a photo of a {name}"]
        result.append(_with_token(cycle_to(prompts, count), name, tokens.get(class_id)))
    return result


def _with_token(prompts: list[str], class_name: str, token: str | None) -> list[str]:
    if token is None:
        return prompts
    return [_insert_token(p, class_name, token) for p in prompts]


def read_descriptions(path) -> dict[str, list[str]]:
    """Class descriptions from a JSON ({class: [sentences]}) or CSV (class,description) file."""
    path = Path(path)
    if not path.is_file():
        raise GenBenchError(f"descriptions file {path} does not exist")
    if path.suffix.lower() == ".json":
        return _read_json_descriptions(path)
    if path.suffix.lower() == ".csv":
        return _read_csv_descriptions(path)
    raise GenBenchError(f"descriptions file {path}: expected a .json or .csv file")


def _read_json_descriptions(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise GenBenchError(f"descriptions file {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise GenBenchError(f"descriptions file {path} must hold an object {{class_name: [sentences]}}")
    result = {}
    for name, sentences in data.items():
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise GenBenchError(f"descriptions file {path}: class {name!r} must map to a list of strings")
        result[name.strip()] = [s.strip() for s in sentences if s.strip()]
    return result


def _read_csv_descriptions(path: Path) -> dict[str, list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"class", "description"} <= set(reader.fieldnames):
            raise GenBenchError(f"descriptions file {path} needs the columns 'class' and 'description'")
        result: dict[str, list[str]] = {}
        for row in reader:
            text = (row["description"] or "").strip()
            if text:
                result.setdefault((row["class"] or "").strip(), []).append(text)
    return result


def _descriptions(classes, templates, params, seed, text_model, tokens):
    if not params.get("file"):
        raise ConfigError("prompt strategy 'descriptions' needs params['file'] (a JSON or CSV file)")
    count = _positive_int(params, "images_per_class", DEFAULT_IMAGES_PER_CLASS, "descriptions")
    table = read_descriptions(params["file"])
    unknown = sorted(set(table) - set(classes))
    if unknown:
        warnings.warn(
            f"descriptions file {params['file']}: classes not in the dataset ignored: {unknown}", stacklevel=2
        )
    result = []
    for class_id, name in enumerate(classes):
        if not table.get(name):
            raise GenBenchError(f"descriptions file {params['file']} has no description for class {name!r}")
        result.append(_with_token(cycle_to(table[name], count), name, tokens.get(class_id)))
    return result


# Strategies whose prompts come from a text-to-text model (models.text2text).
STRATEGIES_NEEDING_TEXT2TEXT = {"model_enc"}

STRATEGIES: dict[str, tuple[Callable, set[str]]] = {
    "simple_template": (_simple_template, {"images_per_class"}),
    "lang_enc": (_lang_enc, {"num_templates", "images_per_template", "images_per_class"}),
    "model_enc": (_model_enc, {"num_sentences", "images_per_class", "max_new_tokens", "model"}),
    "descriptions": (_descriptions, {"file", "images_per_class"}),
}


# ---------------------------------------------------------------- modifiers


def _check_params(strategy: str, params: dict) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown prompt strategy {strategy!r}; valid: {sorted(STRATEGIES)}")
    allowed = STRATEGIES[strategy][1] | MODIFIER_KEYS
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"prompt strategy {strategy!r}: unknown params {unknown}; valid: {sorted(allowed)}")


def _tokens_by_class(params: dict, classes: list[str]) -> dict[int, str]:
    raw = params.get("textual_inversion") or {}
    if not isinstance(raw, dict):
        raise ConfigError("param 'textual_inversion' must be a dict {class_id: token}")
    tokens = {}
    for key, token in raw.items():
        try:
            class_id = int(key)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"param 'textual_inversion': key {key!r} is not a class id") from err
        if not 0 <= class_id < len(classes):
            raise ConfigError(f"param 'textual_inversion': class id {class_id} out of range 0..{len(classes) - 1}")
        tokens[class_id] = str(token)
    missing = [classes[c] for c in range(len(classes)) if c not in tokens]
    if raw and missing:
        raise ConfigError(f"param 'textual_inversion' has no token for classes {missing}")
    return tokens


def negative_prompt_for(class_id: int, classes: list[str], spec: dict | None, seed: int) -> str | None:
    """The negative prompt of a class: n seeded other class names, then the generic list."""
    if not spec:
        return None
    unknown = sorted(set(spec) - {"other_classes", "generic"})
    if unknown:
        raise ConfigError(f"param 'negative_prompts': unknown keys {unknown}; valid: ['generic', 'other_classes']")
    n_other = spec.get("other_classes", 0)
    if isinstance(n_other, bool) or not isinstance(n_other, int) or n_other < 0:
        raise ConfigError(f"param 'negative_prompts.other_classes' must be an int >= 0, got {n_other!r}")
    others = [name for c, name in enumerate(classes) if c != class_id]
    rng = random.Random(stable_int("negative", seed, class_id))
    picked = rng.sample(others, min(n_other, len(others)))
    generic = spec.get("generic", GENERIC_NEGATIVES)
    if not isinstance(generic, list):
        raise ConfigError("param 'negative_prompts.generic' must be a list of strings")
    return ", ".join(picked + [str(g) for g in generic]) or None


def make_prompt_plan(
    strategy: str,
    classes: list[str],
    templates: list[str] | None,
    params: dict | None,
    seed: int,
    *,
    text_model=None,
    set_name: str | None = None,
) -> list[dict]:
    """The prompt plan (list of rows, see module docstring) for ``strategy`` over ``classes``.

    ``text_model`` is an optional ``(model, tokenizer)`` pair used by ``model_enc``.
    ``set_name``: the configured strategy whose set this plan makes (its image seeds depend
    on it; default ``strategy``; a textual-inversion strategy makes its base's prompts).
    """
    params = dict(params or {})
    _check_params(strategy, params)
    if not classes:
        raise ConfigError("make_prompt_plan: the class list is empty")
    tokens = _tokens_by_class(params, classes)
    per_class = STRATEGIES[strategy][0](classes, list(templates or []), params, seed, text_model, tokens)
    suffix = DETAIL_SUFFIX if params.get("detail_suffix") else ""
    plan = []
    for class_id, prompts in enumerate(per_class):
        negative = negative_prompt_for(class_id, classes, params.get("negative_prompts"), seed)
        for image_index, prompt in enumerate(prompts):
            plan.append(
                {
                    "index": len(plan),
                    "class_id": class_id,
                    "class_name": classes[class_id],
                    "prompt": prompt + suffix,
                    "negative_prompt": negative,
                    "seed": image_seed(seed, set_name or strategy, class_id, image_index),
                }
            )
    return plan


def count_truncated_prompts(plan: list[dict], tokenizer, max_length: int = 77) -> int:
    """How many plan rows have a prompt longer than ``max_length`` tokens (specials included)."""
    lengths: dict[str, int] = {}
    truncated = 0
    for row in plan:
        prompt = row["prompt"]
        if prompt not in lengths:
            lengths[prompt] = len(tokenizer(prompt, truncation=False)["input_ids"])
        truncated += lengths[prompt] > max_length
    return truncated


def base_strategy(strategy: str, strategy_params: dict) -> str:
    """The strategy whose prompts are made: itself, or for the injection strategies (ti_*,
    img2img_*, lora_*) their ``base`` (default simple_template), whose prompts then carry the
    learned tokens (ti_*), start from a reference image (img2img_*) or are sampled with the
    dataset's LoRA (lora_*)."""
    if strategy in INJECTION_STRATEGIES:
        return strategy_params.get("base", "simple_template")
    return strategy


@dataclass(frozen=True)
class PromptPlanParams(StageParams):
    """One configured strategy's prompt plan: the strategy, its params (a descriptions file
    keyed by its content), and from the ``generation`` section the set size and seed."""

    STAGE: ClassVar[str] = "prompt_plan"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "generation"

    strategy: str = keyed(doc="the configured strategy (a key of strategies)")
    strategy_params: dict = keyed(doc="strategy_params.<strategy>, a file replaced by its content key")
    images_per_class: int = keyed(doc="images generated per class")
    seed: int = keyed(doc="seed of prompt choices and image noise")
    descriptions_file: str | None = runtime(None, doc="path of strategy_params.<strategy>.file")


def plan_prompts(
    params: PromptPlanParams,
    classes: list[str],
    templates: list[str],
    *,
    tokens: dict | None = None,
    descriptions_file: str | None = None,
    text_model=None,
    references: dict[int, list[str]] | None = None,
) -> list[dict]:
    """The prompt plan of one configured strategy: ``make_prompt_plan`` of its base strategy,
    with ``tokens`` ({class_id: token}) for the textual-inversion strategies, the checked
    path of its descriptions file in place of that file's fingerprint, and for the img2img
    strategies each row's reference image (``with_references``)."""
    strategy_params = {k: v for k, v in params.strategy_params.items() if k != "base"}
    if "file" in strategy_params:
        strategy_params["file"] = descriptions_file
    strategy_params["images_per_class"] = params.images_per_class
    if params.strategy in TEXTUAL_INVERSION_STRATEGIES:
        strategy_params["textual_inversion"] = tokens or {}
    plan = make_prompt_plan(
        base_strategy(params.strategy, params.strategy_params),
        list(classes),
        list(templates),
        strategy_params,
        params.seed,
        text_model=text_model,
        set_name=params.strategy,
    )
    if params.strategy in IMG2IMG_STRATEGIES:
        return with_references(plan, references or {}, classes)
    return plan


def with_references(plan: list[dict], references: dict[int, list[str]], classes) -> list[dict]:
    """The plan's rows, each with ``reference``: the id of the image it starts from. Image j of
    class c (its j-th row) takes ``references[c][j % len(references[c])]``, so the rows of a
    class cycle evenly over its reference images, in their order. GenBenchError naming the
    class when one has no reference."""
    out, seen = [], {}
    for row in plan:
        refs = references.get(row["class_id"]) or []
        if not refs:
            raise GenBenchError(f"img2img: class {classes[row['class_id']]!r} has no reference image")
        j = seen.get(row["class_id"], 0)
        seen[row["class_id"]] = j + 1
        out.append({**row, "reference": refs[j % len(refs)]})
    return out
