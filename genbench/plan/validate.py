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
    generator_specs,
    key_problem,
    load_config,
    raise_problems,
)
from genbench.core.errors import ConfigError
from genbench.data.datasets import get_dataset
from genbench.generation.prompts import (
    IMG2IMG_STRATEGIES,
    INJECTION_STRATEGIES,
    LORA_STRATEGIES,
    MODIFIER_KEYS,
    STRATEGIES,
    TEXTUAL_INVERSION_STRATEGIES,
)

TI_DEFAULT_BASE = "simple_template"  # the base strategy of the injection strategies (ti_*, img2img_*)


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
        problems = _dataset_problems(config) + _strategy_problems(config) + _generator_problems(config)
        problems += _img2img_problems(config) + _draw_problems(config)
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
    return sorted(set(STRATEGIES) | set(INJECTION_STRATEGIES))


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
    """Each param key of strategy ``name`` is one it (or, for ti_* and img2img_*, its base
    strategy) accepts."""
    label, extra = repr(name), set()
    if name in INJECTION_STRATEGIES:
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


def _generators(config: dict) -> list[tuple[str, str, dict]]:
    """(config key, name in messages, spec) of every generator the plan samples with."""
    return [
        (f"generators.{name}", repr(name), spec) if name is not None else ("models.generator", "models.generator", spec)
        for name, spec in generator_specs(config)
    ]


def _scheduler_values(config: dict, spec: dict) -> list:
    """Every scheduler a generator samples with: its own override, else each value of
    ``generation.scheduler`` (top level and per dataset; a list sweeps)."""
    if "scheduler" in spec:
        return [spec["scheduler"]]
    return _section_values(config, "generation", "scheduler")


def _generator_problems(config: dict) -> list[str]:
    """Each generator can run what the config asks of it: textual inversion and LoRA only on a
    pipeline whose family supports them, and no noise-prediction scheduler on a flow-matching pipeline
    (``genbench.models.families``). A generator whose pipeline class cannot be read here (a hub
    id not in the local cache) is not checked."""
    from genbench.models.families import family

    inversion = sorted(_listed_strategies(config) & set(TEXTUAL_INVERSION_STRATEGIES))
    lora = sorted(_listed_strategies(config) & set(LORA_STRATEGIES))
    problems = []
    for key, name, spec in _generators(config):
        cls, fam = family(spec)
        if cls is None:
            continue
        label = f"generator {name} ({cls}" + (f", {fam.name})" if fam else ")")
        if inversion and not (fam and fam.textual_inversion):
            problems.append(
                key_problem(
                    key,
                    f"prompt strategy {inversion[0]!r} cannot run on {label}: GenBench's textual inversion "
                    "trains a token in CLIP text encoders that condition a UNet (SD 1.x/2.x, SDXL); "
                    "drop the strategy or this generator",
                )
            )
        if lora and not (fam and fam.lora):
            problems.append(
                key_problem(
                    key,
                    f"prompt strategy {lora[0]!r} cannot run on {label}: GenBench's LoRA training adapts a "
                    "UNet (SD 1.x/2.x, SDXL) or SD3's transformer; drop the strategy or this generator",
                )
            )
        if fam and fam.flow_matching:
            fix = "generation.scheduler" if key == "models.generator" else f"{key}.scheduler"
            for scheduler in _scheduler_values(config, spec):
                if scheduler is not None:
                    problems.append(
                        key_problem(
                            fix,
                            f"scheduler {scheduler!r} predicts noise, but {label} samples by flow matching; "
                            f"set {fix}: null to keep the pipeline's own",
                        )
                    )
    return problems


def _listed_strategies(config: dict) -> set[str]:
    """Every strategy the config samples with, top level and per dataset."""
    strategies = set(config.get("strategies", []))
    for override in config.get("per_dataset", {}).values():
        strategies |= set(override.get("strategies", []))
    return strategies


def _section_values(config: dict, section: str, key: str) -> list:
    """Every value of ``<section>.<key>`` the plan uses: top level and per dataset, a list's items."""
    sections = [config.get(section) or {}] + [o.get(section) or {} for o in config.get("per_dataset", {}).values()]
    values = []
    for part in sections:
        value = part.get(key)
        values += value if isinstance(value, list) else [value] if key in part else []
    return values


def _img2img_problems(config: dict) -> list[str]:
    """An img2img strategy denoises int(steps x strength) steps, and diffusers refuses zero:
    every (generation.steps, img2img.strength) the plan pairs runs at least one step."""
    if not _listed_strategies(config) & set(IMG2IMG_STRATEGIES):
        return []
    steps, strengths = _section_values(config, "generation", "steps"), _section_values(config, "img2img", "strength")
    if not steps or not strengths or int(min(steps) * min(strengths)) >= 1:
        return []
    return [
        key_problem(
            "img2img.strength",
            f"strength {min(strengths)} at generation.steps {min(steps)} denoises int({min(steps)} x {min(strengths)}) "
            f"= 0 steps; raise the strength to at least {1 / min(steps):g} or the steps",
        )
    ]


def _dataset_section(config: dict, dataset: str, section: str) -> dict:
    """``<section>`` as it applies to ``dataset``: the top level with its per_dataset override."""
    override = (config.get("per_dataset", {}).get(dataset) or {}).get(section) or {}
    return {**(config.get(section) or {}), **override}


def _draw_problems(config: dict) -> list[str]:
    """With ``pack.draw_from`` = M, every pack draws K from a class's top M: M covers the
    largest shot count, and the generated and retrieved sets hold M images a class."""
    problems = []
    for dataset in config.get("datasets", []):
        draw = _dataset_section(config, dataset, "pack").get("draw_from")
        if draw is None:
            continue
        shots = max(_dataset_section(config, dataset, "fewshot").get("shots") or [0])
        if draw < shots:
            problems.append(
                key_problem("pack.draw_from", f"{draw} is below the largest shot count {shots} ({dataset})")
            )
        per_class = _dataset_section(config, dataset, "generation").get("images_per_class")
        if per_class is not None and per_class < draw:
            problems.append(
                key_problem(
                    "generation.images_per_class",
                    f"{per_class} is below pack.draw_from {draw} ({dataset}): a seed's draw needs M images a class",
                )
            )
        k_per_class = _dataset_section(config, dataset, "retrieval").get("k_per_class")
        if k_per_class is not None and k_per_class < draw:
            problems.append(
                key_problem("retrieval.k_per_class", f"{k_per_class} is below pack.draw_from {draw} ({dataset})")
            )
    return problems


def load_run_config(configfiles: list[str] | None = None) -> dict:
    """The embedded config.yaml with each config file merged in, in order, then validated."""
    config = load_config(DEFAULT_CONFIG)
    for path in configfiles or []:
        config = deep_merge(config, load_config(path))
    validate_config(config)
    return config
