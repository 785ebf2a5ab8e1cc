"""The findings of a run, one line each, and the PASS/FAIL lines of its targets.

Targets are config (``report.targets``): the demo's config.yaml states its own; a config file
that states none prints none (``targets_of``). Findings (correlations, strategy comparisons)
are printed for every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

STUDY_METRICS = ("cler", "fd", "clip_score_100", "pad", "gen_recognised")
TARGETS = {  # report.targets keys -> what each checks (docs/CONFIG.md)
    "zero_shot_min": "zero-shot of the first original set (percent) at least this, and below that set's probe",
    "gen_recognised_min": "gen_recognised of simple_template's set (percent) at least this",
    "metrics_vary": "true: no training-free column is constant or NaN over the generated and retrieved sets",
    "training_max_seconds": "the training stages, first start to last end, in at most this many seconds",
}


def targets_of(config: dict, config_files: list[str]) -> dict:
    """The targets a run checks: ``report.targets`` of the config file that states them. With
    no config file of the user's, the embedded config.yaml's (the demo's); otherwise those of
    the last given file that sets ``report.targets``, and none when no given file does (a
    user's benchmark does not inherit the demo's targets)."""
    from genbench.core.config import load_config

    if not config_files:
        return dict((config.get("report") or {}).get("targets") or {})
    for path in reversed(config_files):
        report = load_config(path).get("report") or {}
        if "targets" in report:
            return dict(report["targets"] or {})
    return {}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _first(table: pd.DataFrame, source: str, column: str, strategy: str | None = None) -> float:
    rows = table[(table.source == source) & ((table.strategy == strategy) if strategy else True)]
    return float(rows[column].iloc[0]) if len(rows) and column in rows else np.nan


def job_seconds(benchmark_tsv: str | Path) -> float | None:
    """Wall seconds of a finished job from its Snakemake ``benchmark:`` file (column ``s``);
    None when the job has not run in this results folder."""
    path = Path(benchmark_tsv)
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t")
    return float(table["s"].iloc[-1]) if len(table) else None


def job_window(log_path: str | Path) -> tuple[float, float] | None:
    """(start, end) of a job in seconds since the epoch: the first timestamp its log has (the
    job's first line) and the log's last modification; None without a log."""
    import datetime

    path = Path(log_path)
    if not path.is_file():
        return None
    first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    try:
        start = datetime.datetime.strptime(first[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return None
    return start, path.stat().st_mtime


def training_times(jobs: list[dict]) -> dict:
    """How long the training stages took: ``jobs`` has one ``{"stage", "benchmark", "log"}``
    per training artifact. Returns ``{"per_stage": {stage: s}, "total": s, "elapsed": s}``:
    elapsed from the first start to the last end (stages run side by side), total the sum of
    their job times; None values when a job's files are missing."""
    seconds = {job["stage"]: job_seconds(job["benchmark"]) for job in jobs}
    windows = [job_window(job["log"]) for job in jobs]
    complete = jobs and all(v is not None for v in seconds.values()) and all(windows)
    return {
        "per_stage": seconds,
        "total": sum(seconds.values()) if complete else None,
        "elapsed": max(w[1] for w in windows) - min(w[0] for w in windows) if complete else None,
    }


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:02.0f}s"


def training_finding(times: dict, limit_seconds: float) -> list[str]:
    """The target line for the training stages (elapsed <= ``limit_seconds``), when they ran here."""
    if times["elapsed"] is None:
        return []
    stages = ", ".join(f"{stage} {_minutes(s)}" for stage, s in times["per_stage"].items())
    return [
        f"{_verdict(times['elapsed'] <= limit_seconds)} training stages took {_minutes(times['elapsed'])} "
        f"from the first start to the last end (target <= {_minutes(limit_seconds)}); "
        f"{_minutes(times['total'])} of job time in all ({stages})"
    ]


def target_lines(table: pd.DataFrame, targets: dict, probe: str, training: dict | None = None) -> list[str]:
    """One PASS or FAIL line per target of ``targets`` (keys of ``TARGETS``), from the results
    table (the first seed and shot count per source) and the training times."""
    unknown = set(targets) - set(TARGETS)
    if unknown:
        from genbench.core.errors import ConfigError

        raise ConfigError(f"report.targets: unknown {sorted(unknown)}; valid: {', '.join(TARGETS)}")
    lines = []
    if "zero_shot_min" in targets:
        zero_shot, original = _first(table, "original", "zero_shot"), _first(table, "original", probe)
        shots = _first(table, "original", "shots")
        lines.append(
            f"{_verdict(zero_shot >= targets['zero_shot_min'] and zero_shot < original)} zero-shot {zero_shot:.1f} % "
            f"(target >= {targets['zero_shot_min']:g} % and below the "
            f"{f'{shots:.0f}-shot ' if np.isfinite(shots) else ''}original probe, {original:.1f} %)"
        )
    if "gen_recognised_min" in targets:
        recognised = _first(table, "generated", "gen_recognised", "simple_template")
        lines.append(
            f"{_verdict(recognised >= targets['gen_recognised_min'])} gen_recognised for simple_template "
            f"{recognised:.1f} % (target >= {targets['gen_recognised_min']:g} %)"
        )
    if targets.get("metrics_vary"):
        external = table[table.source.isin(["generated", "retrieval"])]
        columns = [c for c in STUDY_METRICS if c in external]
        constant = [c for c in columns if external[c].nunique(dropna=True) <= 1]
        missing = [c for c in columns if external[c].isna().any()]
        lines.append(
            f"{_verdict(not constant and not missing)} metric columns over generated and retrieved sets: "
            f"constant {constant or 'none'}, NaN {missing or 'none'}"
        )
    if "training_max_seconds" in targets and training:
        lines += training_finding(training, targets["training_max_seconds"])
    return lines


def finding_lines(table: pd.DataFrame, correlations: pd.DataFrame, probe: str) -> list[str]:
    """What the run found: each headline metric's correlation with ``probe`` (with its
    intervals), and the injection strategies against simple_template where both ran."""
    from genbench.report.correlations import pooled_rows

    lines = []
    correlations = pooled_rows(correlations)
    for metric in ("cler", "fd", "clip_score_100", "pad"):
        row = correlations[correlations.metric == metric]
        if len(row):
            r = row.iloc[0]
            lines.append(
                f"finding: {metric} vs {probe} over {int(r.n)} sets: Pearson {r.pearson:.2f} "
                f"[{r.pearson_low:.2f}, {r.pearson_high:.2f}], Spearman {r.spearman:.2f} "
                f"[{r.spearman_low:.2f}, {r.spearman_high:.2f}], Kendall {r.kendall:.2f} "
                f"[{r.kendall_low:.2f}, {r.kendall_high:.2f}]"
            )
    return lines + injection_lines(table, probe)


def injection_lines(table: pd.DataFrame, probe: str) -> list[str]:
    """``probe`` of each generated set of an injection strategy (ti_*, img2img_* at each
    strength) against simple_template's, where both ran (the first row of each, over the
    other axes): ``finding: linear_probe img2img_original (strength 0.5) 41.0 % vs
    simple_template 44.9 %``."""
    from genbench.generation.prompts import INJECTION_STRATEGIES

    simple = _first(table, "generated", probe, "simple_template")
    if not np.isfinite(simple):
        return []
    generated = table[(table.source == "generated") & table.strategy.isin(list(INJECTION_STRATEGIES))]
    by = ["strategy", "strength"] if "strength" in generated else ["strategy"]
    lines = []
    for keys, rows in generated.groupby(by, sort=True):
        strategy, strength = (keys[0], str(keys[1])) if len(by) == 2 else (keys[0], "-")
        name = strategy if strength == "-" else f"{strategy} (strength {strength})"
        value = float(rows[probe].iloc[0])
        if np.isfinite(value):
            lines.append(f"finding: {probe} {name} {value:.1f} % vs simple_template {simple:.1f} %")
    return lines


def study_findings(
    table: pd.DataFrame,
    correlations: pd.DataFrame,
    probe: str = "linear_probe",
    training: dict | None = None,
    targets: dict | None = None,
) -> list[str]:
    """The run's target lines (``target_lines``, none without targets) and findings
    (``finding_lines``): results/report/findings.txt."""
    return target_lines(table, targets or {}, probe, training) + finding_lines(table, correlations, probe)
