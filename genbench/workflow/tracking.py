"""Optional Weights & Biases logging of the results tables (off by default).

Config section (all keys optional; tracking is off unless ``enabled: true``)::

    tracking:
      wandb: {enabled: false, project: genbench, mode: null, run_name: null}

``mode``: ``online`` uploads, ``offline`` writes the run under ``./wandb`` (or ``$WANDB_DIR``)
for a later ``wandb sync``, ``null`` picks online when ``WANDB_API_KEY`` is set and offline
otherwise. The API key is read by wandb itself from the environment (``WANDB_API_KEY``), never
from the config or the repository; without it a run is always offline, and the log says so.
``wandb`` is an optional dependency (``pip install wandb``), imported only when tracking is on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from loguru import logger

from genbench.core.errors import ConfigError, GenBenchError

MODES = ("online", "offline")
DEFAULTS = {"enabled": False, "project": "genbench", "mode": None, "run_name": None}
# Columns of summary.csv reported as summary metrics (mean over the external sets, and per source).
HEADLINE = ("linear_probe", "zero_shot", "gain", "cler", "fd", "clip_score_100", "pad")


def tracking_settings(config: dict) -> dict | None:
    """``{project, mode, run_name}`` when ``tracking.wandb.enabled`` is true, else None.

    Raises ConfigError naming the key for an unknown key or a bad value.
    """
    section = (config or {}).get("tracking") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config key 'tracking': expected a mapping, got {section!r}")
    unknown = sorted(set(section) - {"wandb"})
    if unknown:
        raise ConfigError(f"config key 'tracking': unknown key(s) {unknown}; allowed keys: wandb")
    raw = section.get("wandb") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config key 'tracking.wandb': expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config key 'tracking.wandb': unknown key(s) {unknown}; allowed keys: {', '.join(DEFAULTS)}")
    settings = {**DEFAULTS, **raw}
    if not isinstance(settings["enabled"], bool):
        raise ConfigError(f"config key 'tracking.wandb.enabled': expected true or false, got {settings['enabled']!r}")
    if not settings["enabled"]:
        return None
    if not isinstance(settings["project"], str) or not settings["project"].strip():
        raise ConfigError(
            f"config key 'tracking.wandb.project': expected a non-empty string, got {settings['project']!r}"
        )
    if settings["mode"] is not None and settings["mode"] not in MODES:
        raise ConfigError(
            f"config key 'tracking.wandb.mode': {settings['mode']!r} is not one of {list(MODES) + [None]}"
        )
    if settings["run_name"] is not None and not isinstance(settings["run_name"], str):
        raise ConfigError(f"config key 'tracking.wandb.run_name': expected a string, got {settings['run_name']!r}")
    return {k: settings[k] for k in ("project", "mode", "run_name")}


def resolve_mode(mode: str | None, environ=None) -> tuple[str, str | None]:
    """(wandb mode to use, a note for the log or None).

    An explicit ``mode`` wins, then ``$WANDB_MODE``; ``online`` needs ``$WANDB_API_KEY`` and
    falls back to ``offline`` without it; with neither, online when the key is set.
    """
    env = os.environ if environ is None else environ
    if mode is not None and mode not in MODES:
        raise GenBenchError(f"wandb mode {mode!r} is not one of {list(MODES) + [None]}")
    has_key = bool(env.get("WANDB_API_KEY"))
    wanted = mode or env.get("WANDB_MODE") or ("online" if has_key else "offline")
    if wanted not in MODES:
        raise GenBenchError(f"WANDB_MODE={wanted!r} is not one of {list(MODES)}")
    if wanted == "online" and not has_key:
        return "offline", (
            "WANDB_API_KEY is not set: logging offline to the local wandb folder "
            "(upload later with `wandb sync <run dir>`)"
        )
    if wanted == "offline":
        return "offline", ("logging offline to the local wandb folder (upload later with `wandb sync <run dir>`)")
    return "online", None


def _import_wandb():
    """The wandb module, or a GenBenchError telling how to install it."""
    try:
        import wandb
    except ImportError:
        raise GenBenchError(
            "W&B tracking is enabled (tracking.wandb.enabled) but the wandb package "
            "is not installed: pip install wandb (or pip install 'genbench[wandb]'), "
            "or set tracking.wandb.enabled: false"
        ) from None
    return wandb


def _read_table(path: str | os.PathLike, what: str):
    import pandas as pd

    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise GenBenchError(f"{what} table {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GenBenchError(f"{what} table {path} is not a readable CSV: {err}") from None


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def headline_metrics(summary, correlations) -> dict[str, float]:
    """Summary metrics: set count, mean headline columns (overall and per source), correlations.

    Keys: ``sets``, ``mean/<col>``, ``<source>/mean_<col>``, ``best/gain`` and
    ``corr/<metric>/<pearson|spearman|kendall>``; NaN and missing values are left out.
    """
    out: dict[str, float] = {"sets": float(len(summary))}
    columns = [c for c in HEADLINE if c in summary]
    for col in columns:
        value = _finite(summary[col].astype(float).mean())
        if value is not None:
            out[f"mean/{col}"] = value
    if "source" in summary:
        for source, group in summary.groupby("source"):
            for col in columns:
                value = _finite(group[col].astype(float).mean())
                if value is not None:
                    out[f"{source}/mean_{col}"] = value
    if "gain" in summary and _finite(summary["gain"].astype(float).max()) is not None:
        out["best/gain"] = float(summary["gain"].astype(float).max())
    for _, row in correlations.iterrows():
        for kind in ("pearson", "spearman", "kendall"):
            value = _finite(row.get(kind))
            if value is not None:
                out[f"corr/{row['metric']}/{kind}"] = value
    return out


def log_results_to_wandb(
    summary_csv,
    correlations_csv,
    *,
    project: str,
    run_name: str | None = None,
    mode: str | None = None,
    config: dict | None = None,
    directory: str | os.PathLike | None = None,
) -> str | None:
    """Log summary.csv and correlations.csv to a W&B run; return the run's local directory.

    Both tables are logged as ``wandb.Table``s (keys ``summary`` and ``correlations``) and the
    headline numbers (``headline_metrics``) as the run's summary metrics. ``mode``: see
    ``resolve_mode``; ``directory``: parent of the ``wandb/`` folder (default: wandb's own,
    ``$WANDB_DIR`` or the working directory). Returns None for ``mode="disabled"`` without
    importing wandb.
    """
    if mode == "disabled":
        return None
    summary = _read_table(summary_csv, "summary")
    correlations = _read_table(correlations_csv, "correlations")
    mode, note = resolve_mode(mode)
    wandb = _import_wandb()
    if note:
        logger.info(f"W&B: {note}")
    init = {"project": project, "name": run_name, "mode": mode, "config": config or {}}
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        init["dir"] = str(directory)
    run = wandb.init(**init)
    try:
        run.log({"summary": wandb.Table(dataframe=summary), "correlations": wandb.Table(dataframe=correlations)})
        for key, value in headline_metrics(summary, correlations).items():
            run.summary[key] = value
        run_dir = str(Path(run.dir).parent)
    finally:
        run.finish()
    logger.info(f"W&B: run {run_name or ''} ({mode}) saved in {run_dir}")
    return run_dir


def maybe_log_results(config: dict, summary_csv, correlations_csv, *, directory=None) -> str | None:
    """The report step's hook: log the tables when ``tracking.wandb.enabled``, else do nothing."""
    settings = tracking_settings(config)
    if settings is None:
        return None
    return log_results_to_wandb(
        summary_csv,
        correlations_csv,
        project=settings["project"],
        run_name=settings["run_name"],
        mode=settings["mode"],
        config=config,
        directory=directory,
    )
