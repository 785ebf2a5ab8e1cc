"""Loading and validating the workflow config (schema: genbench/core/schema/config.schema.yaml).

``validate_config`` reports every problem it finds, one line each, as
``config key '<dotted.key>': <problem>``, in a single ConfigError.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path

import yaml

from genbench.core.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
# A value ending like this names a file, never a hub id or an open_clip tag.
FILE_SUFFIXES = (
    ".pt",
    ".pth",
    ".bin",
    ".safetensors",
    ".ckpt",
    ".npz",
    ".npy",
    ".pkl",
    ".onnx",
    ".h5",
    ".json",
    ".yaml",
    ".yml",
)
MODEL_PATH_KEYS = ("model", "pretrained", "weights", "path", "config")

MAX_PROBLEMS = 20  # lines listed in one error


# ---------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The JSON schema of the workflow config, as written in the schema file."""
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config file; a one-line ConfigError when it is missing, unreadable or not YAML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(path, err)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _yaml_problem(path, err: yaml.YAMLError) -> str:
    """``config file <path>, line <n>: <problem>`` (1-based line) from a YAML error, one line."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    problem = " ".join(str(problem).split())
    if mark is None:
        return f"config file {path}: {problem}"
    return f"config file {path}, line {mark.line + 1}: {problem}"


# ---------------------------------------------------------------- schema


def _relaxed(schema):
    """A copy of a (sub)schema with every ``required`` list dropped, recursively ($refs are not
    followed; the overridable sections do not use $refs with required keys)."""
    if isinstance(schema, list):
        return [_relaxed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    relaxed = {}
    for key, value in schema.items():
        if key == "required":
            continue
        if key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
            relaxed[key] = {name: _relaxed(sub) for name, sub in value.items()}  # names, not keywords
        else:
            relaxed[key] = _relaxed(value)
    return relaxed


def full_schema() -> dict:
    """The schema with each ``per_dataset`` section set to its top-level schema, relaxed."""
    schema = copy.deepcopy(load_schema())
    top = schema["properties"]
    sections = top["per_dataset"]["additionalProperties"]["properties"]
    for name in sections:
        sections[name] = _relaxed(top[name])
    return schema


def _is_integer(checker, instance) -> bool:
    """Integers are ints only: not 2.0 (JSON Schema's integer) and not true/false."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@lru_cache(maxsize=1)
def _validator():
    """A Draft 2020-12 validator of ``full_schema()`` whose "integer" rejects floats and bools."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    strict = jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer))
    return strict(full_schema())


def _key_path(parts) -> str:
    """Dotted key of a path, list indices as [i]: ``metrics.extra_encoders[0].weights``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def key_problem(key: str, message: str) -> str:
    return f"config key '{key}': {message}"


def _schema_problems(config: dict) -> list[str]:
    """One line per schema violation; an unknown key is named itself (``probe.sed``)."""
    problems = []
    for error in _validator().iter_errors(config):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and error.validator_value is False:
            allowed = sorted(error.schema.get("properties", {}))
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            problems += [
                key_problem(_key_path(path + [k]), f"unknown key(s) {k!r}{hint}")
                for k in error.instance
                if k not in allowed
            ]
        else:
            problems.append(key_problem(_key_path(path), _describe(error)))
    return problems


def _describe(error) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {expected}, got {error.instance!r}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return "; or ".join(_describe(sub) for sub in error.context)
    return error.message


# ---------------------------------------------------------------- validation


def config_problems(config: dict) -> list[str]:
    """Every problem of ``config`` that this floor can see, one line each naming its key: the
    schema's, then (when the types hold) the cross-key rules of models, extra encoders and the
    retrieval index. ``genbench.plan.validate.validate_config`` adds the dataset registry's and
    the strategy table's and raises."""
    problems = _schema_problems(config)
    return problems or _cross_key_problems(config)  # the cross-key rules rely on the schema's types


def raise_problems(problems: list[str]) -> None:
    """One ConfigError listing every problem (none: nothing happens)."""
    if problems:
        raise ConfigError(_error_text(problems))


def _error_text(problems: list[str]) -> str:
    """The problem itself when there is one; else a count and one indented line each."""
    unique = list(dict.fromkeys(problems))
    if len(unique) == 1:
        return unique[0]
    lines = [f"  {p}" for p in unique[:MAX_PROBLEMS]]
    if len(unique) > MAX_PROBLEMS:
        lines.append(f"  ... and {len(unique) - MAX_PROBLEMS} more")
    return f"invalid config, {len(unique)} problems:\n" + "\n".join(lines)


def _cross_key_problems(config: dict) -> list[str]:
    problems = _listed_dataset_problems(config)
    for role, spec in config.get("models", {}).items():
        problems += _model_problems(f"models.{role}", role, spec)
    for name, spec in (config.get("generators") or {}).items():
        model = {k: v for k, v in spec.items() if k in ("model", "seed", "pipeline")}
        problems += _model_problems(f"generators.{name}", "generator", model)
    for i, spec in enumerate(config.get("metrics", {}).get("extra_encoders", [])):
        key = f"metrics.extra_encoders[{i}]"
        if is_built(spec) or not spec.get("type"):
            problems.append(key_problem(key, "give {type: inception|hf|open_clip, ...}"))
        else:
            problems += _model_problems(key, "extra_encoder", spec)
    pool = config.get("retrieval", {}).get("pool")
    if config.get("retrieval", {}).get("index") == "faiss" and pool in ("train_split", "corpus"):
        problems.append(key_problem("retrieval.index", f"faiss needs a pool folder with its index, not pool: {pool}"))
    return problems + _text_encoder_problems(config)


TEXT_ENCODER_TYPES = ("open_clip", "hf")


def _text_encoder_problems(config: dict) -> list[str]:
    """``models.encoder`` and ``pack.selection_encoder`` (top level or per dataset) name encoders
    with a text tower: zero-shot, CLER, clip selection and the CLIP scores embed prompts with them."""
    encoder = config.get("models", {}).get("encoder", {})
    problems = []
    if isinstance(encoder, dict) and not is_built(encoder) and encoder.get("type") == "inception":
        problems.append(
            key_problem(
                "models.encoder",
                "type 'inception' has no text tower, but zero_shot, cler, clip_score_100 and clip_score_paper "
                "embed class prompts with the feature encoder; use open_clip or hf here, and inception under "
                "metrics.extra_encoders",
            )
        )
    sections = [("pack.selection_encoder", config.get("pack", {}))]
    sections += [
        (f"per_dataset.{d}.pack.selection_encoder", o.get("pack") or {})
        for d, o in config.get("per_dataset", {}).items()
    ]
    for key, pack in sections:
        spec = pack.get("selection_encoder") if isinstance(pack, dict) else None
        if not isinstance(spec, dict):
            continue
        if not is_built(spec) and spec.get("type") not in TEXT_ENCODER_TYPES:
            problems.append(
                key_problem(
                    key,
                    f"type {spec.get('type')!r} has no text tower, but clip selection and clip_score_paper "
                    f"embed class prompts with this encoder; give type {' or '.join(TEXT_ENCODER_TYPES)}",
                )
            )
        else:
            problems += _model_problems(key, "encoder", spec)
    return problems


def _listed_dataset_problems(config: dict) -> list[str]:
    """``per_dataset`` and ``data.roots`` (top level or overridden) name only listed datasets."""
    datasets = list(config.get("datasets", []))
    named = [(f"per_dataset.{d}", d) for d in config.get("per_dataset", {})]
    named += [(f"data.roots.{d}", d) for d in config.get("data", {}).get("roots", {})]
    for dataset, overrides in config.get("per_dataset", {}).items():
        roots = overrides.get("data", {}).get("roots", {})
        named += [(f"per_dataset.{dataset}.data.roots.{d}", d) for d in roots]
    return [key_problem(key, f"{d!r} is not in 'datasets' {datasets}") for key, d in named if d not in datasets]


def looks_like_local_path(value: str) -> bool:
    """True when ``value`` names a file or folder rather than a hub id (``org/name``) or a tag
    (``openai``, ``ViT-B-32``): it starts with /, . or ~, exists on disk, ends with a file suffix
    (.pt, .bin, .safetensors, ...) or holds two or more slashes."""
    if not isinstance(value, str) or not value:
        return False
    if value.startswith(("/", ".", "~")) or value.count("/") >= 2:
        return True
    if value.lower().endswith(FILE_SUFFIXES):
        return True
    try:
        return Path(value).expanduser().exists()
    except (OSError, ValueError):  # e.g. a NUL byte or a name too long for the file system
        return False


def generator_specs(config: dict) -> list[tuple[str | None, dict]]:
    """(name, spec) of every generator the plan samples with: each entry of the ``generators``
    map, else ``models.generator`` alone, named None (its sets carry no generator label)."""
    named = config.get("generators") or {}
    if named:
        return list(named.items())
    return [(None, config.get("models", {}).get("generator") or {})]


def is_tiny(spec: dict) -> bool:
    """True for {model: tiny}: a tiny random model built in code (open_clip type for encoders)."""
    return spec.get("model") == "tiny" and spec.get("type", "open_clip") == "open_clip"


def open_clip_quick_gelu(spec: dict) -> bool:
    """Whether an open_clip encoder spec is built with QuickGELU: ``quick_gelu`` when given,
    else True for ``pretrained: openai`` (OpenAI's CLIPs use it; open_clip's plain model names,
    ViT-B-32 and so on, build GELU unless told)."""
    return bool(spec.get("quick_gelu", spec.get("pretrained") == "openai"))


def is_trained(spec: dict) -> bool:
    """True for {model: trained} ({type: open_clip, model: trained} for the encoder): a model
    the workflow trains on its corpus (``training.encoder``, ``generator``, ``text2text``)."""
    return spec.get("model") == "trained" and spec.get("type", "open_clip") == "open_clip"


def is_built(spec: dict) -> bool:
    """A model the workflow makes itself (tiny or trained), not one a user points at."""
    return is_tiny(spec) or is_trained(spec)


TRAINED_ROLES = ("encoder", "generator", "text2text")  # what the workflow can train on its corpus


def _model_problems(key: str, role: str, spec: dict) -> list[str]:
    """A model spec names what it needs, and each of its local-looking paths exists."""
    if is_trained(spec) and role not in TRAINED_ROLES:
        return [key_problem(key, "{model: trained} is only for models.encoder, generator and text2text")]
    if "pipeline" in spec and not (role == "generator" and is_tiny(spec)):
        return [
            key_problem(
                f"{key}.pipeline",
                "pipeline picks a tiny generator ({model: tiny, pipeline: sdxl}); a real pipeline's "
                "family is read from its model_index.json",
            )
        ]
    if is_built(spec):
        return []
    if role in ("generator", "text2text") and not spec.get("model"):
        return [key_problem(key, "give {model: tiny} or {model: <hub id or folder>}")]
    if role == "encoder" and not spec.get("type"):
        return [key_problem(key, "give {type: open_clip|inception|hf, ...}")]
    problems = []
    for k in MODEL_PATH_KEYS:
        if not (isinstance(spec.get(k), str) and looks_like_local_path(spec[k])):
            continue
        path = Path(spec[k]).expanduser()
        if not path.exists():
            problems.append(key_problem(f"{key}.{k}", f"path {spec[k]} does not exist"))
        elif k in CHECKPOINT_KEYS and path.is_file() and not is_checkpoint_file(path):
            problems.append(
                key_problem(
                    f"{key}.{k}",
                    f"{spec[k]} is not a checkpoint (neither a torch.save / TorchScript archive, a pickled "
                    "state dict nor a safetensors file)",
                )
            )
    return problems


CHECKPOINT_KEYS = ("pretrained", "weights")


def is_checkpoint_file(path: Path) -> bool:
    """Whether ``path`` looks like model weights, from its first bytes (no torch import): a zip
    archive holding a pickle (torch.save since 1.6, TorchScript), a pickle of protocol 2 or
    more (torch.save's legacy format), or safetensors (an 8-byte little-endian header length,
    then that many bytes of JSON)."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        with open(path, "rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except (OSError, zipfile.BadZipFile):
        return False
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return len(head) == 9 and 0 < int.from_bytes(head[:8], "little") <= size - 8 and head[8:9] == b"{"


def check_results_dir(results_dir: str) -> None:
    """Fail early, naming the folder, when the results folder cannot be created or written, or
    when it holds files and none of them is GenBench's: a run cleans dead jobs' leftovers and
    ``gc`` removes folders in its results folder, so ``results_dir: /`` or ``~`` is refused."""
    path = Path(results_dir)
    if path.is_dir() and not _is_genbench_folder(path):
        raise ConfigError(
            f"config key 'results_dir': {results_dir} is not empty and holds nothing GenBench wrote (no "
            ".genbench/ folder, no <stage>/<dataset>/<artifact>/MANIFEST.json); give a new or empty folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"config key 'results_dir': cannot create {results_dir}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"config key 'results_dir': {results_dir} is not writable")


def _is_genbench_folder(path: Path) -> bool:
    """Empty, or GenBench's: its ``.genbench/`` folder, or an artifact manifest three levels down
    (results copied without ``.genbench/`` are GenBench's too)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return True  # unreadable: the writability check names it
    if not entries or any(e.name == ".genbench" and e.is_dir() for e in entries):
        return True
    for stage in (e for e in entries if e.is_dir(follow_symlinks=False)):
        for scope in _subfolders(stage.path):
            if any(os.path.isfile(os.path.join(f, "MANIFEST.json")) for f in _subfolders(scope)):
                return True
    return False


def _subfolders(folder: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in, dictionaries recursively (as Snakemake
    merges --configfile files into the embedded config)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
