"""Loading and validating the workflow config (schema: genbench/schema/config.schema.yaml)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from genbench.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The JSON schema of the workflow config."""
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config file (a clear error when it is missing or not YAML)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _key_path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _describe(error) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = ", ".join(repr(k) for k in error.instance if k not in allowed)
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key(s) {extra}{hint}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"expected {error.validator_value}, got {error.instance!r}"
    return error.message


def validate_config(config: dict) -> None:
    """Check ``config`` against the schema and cross-key rules; raise ConfigError naming the key.

    Cross-key rules: every dataset in ``per_dataset`` and ``data.roots`` is listed in
    ``datasets``; model paths that look local exist; strategies are known.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  config key '{_key_path(e)}': {_describe(e)}" for e in errors[:10]]
        raise ConfigError("invalid config:\n" + "\n".join(lines))
    _check_cross_keys(config)


def _check_cross_keys(config: dict) -> None:
    datasets = set(config.get("datasets", []))
    for section in ("per_dataset",):
        for name in config.get(section, {}):
            if name not in datasets:
                raise ConfigError(f"config key '{section}.{name}': {name!r} is not in 'datasets'")
    for role, spec in config.get("models", {}).items():
        _check_model_spec(role, spec)
    for i, spec in enumerate(config.get("metrics", {}).get("extra_encoders", [])):
        if is_tiny(spec) or not spec.get("type"):
            raise ConfigError(f"config key 'metrics.extra_encoders[{i}]': give {{type: inception|hf|open_clip, ...}}")
        _check_model_spec(f"extra_encoders[{i}]", spec, section="metrics")
    _check_strategies(config)


def _looks_local(value: str) -> bool:
    """A filesystem path rather than a hub id ("org/name") or a tag ("openai")."""
    return value.startswith(("/", ".", "~")) or value.count("/") >= 2


def is_tiny(spec: dict) -> bool:
    """True for {model: tiny}: a tiny random model built in code (open_clip type for encoders)."""
    return spec.get("model") == "tiny" and spec.get("type", "open_clip") == "open_clip"


def _check_model_spec(role: str, spec: dict, section: str = "models") -> None:
    if is_tiny(spec):
        return
    if role in ("generator", "text2text") and not spec.get("model"):
        raise ConfigError(f"config key 'models.{role}': give {{model: tiny}} or {{model: <hub id or folder>}}")
    if role == "encoder" and not spec.get("type"):
        raise ConfigError("config key 'models.encoder': give {type: open_clip|inception|hf, ...}")
    for key in ("model", "pretrained", "weights", "path", "config"):
        value = spec.get(key)
        if isinstance(value, str) and _looks_local(value) and not Path(value).expanduser().exists():
            raise ConfigError(f"config key '{section}.{role}.{key}': path {value} does not exist")


def _check_strategies(config: dict) -> None:
    from genbench.plan import TEXTUAL_INVERSION_STRATEGIES
    from genbench.prompts import STRATEGIES

    known = set(STRATEGIES) | set(TEXTUAL_INVERSION_STRATEGIES)
    named = list(config.get("strategies", [])) + list(config.get("strategy_params", {}))
    for overrides in config.get("per_dataset", {}).values():
        named += list(overrides.get("strategies", [])) + list(overrides.get("strategy_params", {}))
    for name in named:
        if name not in known:
            raise ConfigError(f"config key 'strategies': unknown prompt strategy {name!r}; valid: {sorted(known)}")


def check_results_dir(results_dir: str) -> None:
    """Fail early, naming the folder, when the results folder cannot be created or written."""
    path = Path(results_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"config key 'results_dir': cannot create {results_dir}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"config key 'results_dir': {results_dir} is not writable")
