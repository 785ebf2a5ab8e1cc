"""The whole config check: the schema and the cross-key rules of ``genbench.core.config``,
then the rules that need the dataset registry and the strategy table (every listed dataset is
known and every user dataset declaration sound; strategies are known and their params allowed).
``load_run_config`` is the embedded config.yaml with each config file merged in, validated.
"""

from __future__ import annotations

from genbench.core.config import (
    DEFAULT_CONFIG,
    config_problems,
    deep_merge,
    key_problem,
    load_config,
    raise_problems,
)
from genbench.core.errors import ConfigError
from genbench.data.datasets import get_dataset
from genbench.generation.prompts import MODIFIER_KEYS, STRATEGIES, TEXTUAL_INVERSION_STRATEGIES

TI_DEFAULT_BASE = "simple_template"  # the base strategy of ti_original / ti_retrieval


def validate_config(config: dict) -> None:
    """Check ``config`` against the schema and every cross-key rule; one ConfigError listing
    every problem, one line each, naming its key.

    Cross-key rules: every dataset in ``datasets`` is known and every user dataset declaration
    is sound (class names included); every dataset in ``per_dataset`` and ``data.roots`` is
    listed in ``datasets``; model paths that look local exist; strategies are known and their
    ``strategy_params`` keys are allowed for them.
    """
    problems = config_problems(config)
    if not problems:  # the registry's rules rely on the types the schema checked
        problems = _dataset_problems(config) + _strategy_problems(config)
    raise_problems(problems)


def _dataset_problems(config: dict) -> list[str]:
    """Every listed dataset is known; every user dataset declaration passes the registry's checks."""
    users = config.get("user_datasets", {})
    problems = []
    for name in list(users) + [d for d in config.get("datasets", []) if d not in users]:
        try:
            get_dataset(name, users)
        except ConfigError as err:
            problems.append(_dataset_error(err, "user_datasets" if name in users else "datasets"))
    return problems


def _dataset_error(err: ConfigError, fallback_key: str) -> str:
    """A registry error as a config problem: genbench.data.datasets names a user dataset's keys
    ``datasets.<name>.<key>``; in the config they live under ``user_datasets.<name>``."""
    text = str(err)
    head, sep, rest = text.partition(": ")
    if sep and head.startswith("datasets.") and " " not in head:
        return key_problem(f"user_{head}", rest)
    return key_problem(fallback_key, text)


def _known_strategies() -> list[str]:
    return sorted(set(STRATEGIES) | set(TEXTUAL_INVERSION_STRATEGIES))


def _strategy_problems(config: dict) -> list[str]:
    """Known names in ``strategies`` and ``strategy_params``, top level and per dataset, and
    allowed param keys (a per-dataset override inherits a ti strategy's ``base`` from the top)."""
    known = _known_strategies()
    top_params = config.get("strategy_params", {})
    scopes = [("", config)] + [(f"per_dataset.{d}.", o) for d, o in config.get("per_dataset", {}).items()]
    problems = []
    for prefix, scope in scopes:
        problems += [
            key_problem(f"{prefix}strategies", f"unknown prompt strategy {name!r}; valid: {known}")
            for name in scope.get("strategies", [])
            if name not in known
        ]
        for name, params in scope.get("strategy_params", {}).items():
            key = f"{prefix}strategy_params.{name}"
            if name not in known:
                problems.append(key_problem(key, f"unknown prompt strategy {name!r}; valid: {known}"))
            else:
                problems += _param_problems(key, name, params, top_params.get(name) or {})
    return problems


def _param_problems(key: str, name: str, params: dict, inherited: dict) -> list[str]:
    """Each param key of strategy ``name`` is one it (or, for ti_*, its base strategy) accepts."""
    label, extra = repr(name), set()
    if name in TEXTUAL_INVERSION_STRATEGIES:
        base = params.get("base", inherited.get("base", TI_DEFAULT_BASE))
        if not isinstance(base, str) or base not in STRATEGIES:
            return [key_problem(f"{key}.base", f"unknown base strategy {base!r}; valid: {sorted(STRATEGIES)}")]
        label, extra, name = f"{name!r} (base {base!r})", {"base"}, base
    allowed = sorted(STRATEGIES[name][1] | MODIFIER_KEYS | extra)
    return [
        key_problem(f"{key}.{param}", f"unknown param {param!r} of prompt strategy {label}; valid: {allowed}")
        for param in params
        if param not in allowed
    ]


def load_run_config(configfiles: list[str] | None = None) -> dict:
    """The embedded config.yaml with each config file merged in, in order, then validated."""
    config = load_config(DEFAULT_CONFIG)
    for path in configfiles or []:
        config = deep_merge(config, load_config(path))
    validate_config(config)
    return config
