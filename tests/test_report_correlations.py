"""Metric-vs-probe correlations of the report, with bootstrap intervals checked against scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genbench.evaluation.evaluate import recognised
from genbench.report.correlations import bootstrap_interval, correlation_rows, metric_correlations


def _table(n=12, seed=0):
    rng = np.random.default_rng(seed)
    probe = rng.uniform(20, 90, n)
    return pd.DataFrame(
        {
            "linear_probe": probe,
            "cler": probe + rng.normal(0, 8, n),
            "fd": rng.uniform(0, 5, n),
            "pad": np.full(n, 2.0),
        }
    )


def test_coefficients_equal_scipys():
    table = _table()
    corr = metric_correlations(table).set_index("metric")
    assert corr.loc["cler", "n"] == 12
    assert corr.loc["cler", "pearson"] == pytest.approx(stats.pearsonr(table.cler, table.linear_probe)[0])
    assert corr.loc["cler", "spearman"] == pytest.approx(stats.spearmanr(table.cler, table.linear_probe)[0])
    assert corr.loc["fd", "kendall"] == pytest.approx(stats.kendalltau(table.fd, table.linear_probe)[0])


@pytest.mark.parametrize(
    "kind, statistic", [("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)]
)
def test_row_coefficients_equal_scipys_on_resamples_with_ties(kind, statistic):
    """The vectorised coefficients of the bootstrap, row by row against scipy, on rows full of
    ties (as resamples with replacement are) and some constant rows (NaN in both)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, size=(200, 9)).astype(float)
    y = rng.normal(size=(200, 9)).round(1)
    x[:5] = 2.0
    ours = correlation_rows(kind, x, y)
    for row, value in zip(zip(x, y), ours):
        if np.ptp(row[0]) == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(statistic(*row)[0], abs=1e-12)


def test_a_constant_column_has_nan_coefficients_and_intervals():
    corr = metric_correlations(_table()).set_index("metric")
    assert corr.loc["pad", ["pearson", "pearson_low", "kendall_high"]].isna().all()


@pytest.mark.parametrize("kind, statistic", [("pearson", stats.pearsonr), ("spearman", stats.spearmanr)])
def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap(kind, statistic):
    table = _table(n=30, seed=3)
    x, y = table.cler.to_numpy(), table.linear_probe.to_numpy()
    low, high = bootstrap_interval(kind, x, y, samples=4000, seed=1)
    reference = stats.bootstrap(
        (x, y),
        lambda a, b: statistic(a, b)[0],
        paired=True,
        vectorized=False,
        n_resamples=4000,
        method="percentile",
        random_state=np.random.default_rng(7),
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.03)
    assert high == pytest.approx(reference.high, abs=0.03)
    assert low < statistic(x, y)[0] < high


def test_bootstrap_interval_is_seeded():
    table = _table()
    args = ("kendall", table.cler, table.linear_probe)
    assert bootstrap_interval(*args) == bootstrap_interval(*args)
    assert np.isnan(bootstrap_interval("pearson", [1.0, 2.0], [2.0, 1.0])).all()


def test_recognised_counts_images_put_in_their_own_class():
    text = np.eye(3)
    feats = np.array([[1.0, 0.1, 0], [0.2, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0.2]])
    assert recognised(feats, np.array([0, 1, 2, 2]), text) == pytest.approx(75.0)


def test_study_findings_state_each_target_of_the_config_with_its_verdict():
    from genbench.plan.validate import load_run_config
    from genbench.report.findings import study_findings

    targets = load_run_config([])["report"]["targets"]  # the demo's (config.yaml)

    table = pd.DataFrame(
        {
            "source": ["original", "generated", "generated", "retrieval"],
            "strategy": [np.nan, "simple_template", "ti_original", np.nan],
            "shots": [5, 5, 5, 5],
            "linear_probe": [47.0, 13.0, 15.0, 26.0],
            "zero_shot": [31.0, 31.0, 31.0, 31.0],
            "cler": [43.0, 27.0, 28.0, 24.0],
            "fd": [np.nan, 1700.0, 1710.0, 350.0],
            "gen_recognised": [34.0, 12.0, 14.0, 30.0],
        }
    )
    correlations = metric_correlations(table)
    lines = study_findings(table, correlations, targets=targets)
    assert lines[0].startswith("PASS zero-shot 31.0 %") and "5-shot original probe, 47.0 %" in lines[0]
    assert lines[1].startswith("FAIL gen_recognised for simple_template 12.0 %")
    assert lines[2].startswith("PASS metric columns")
    assert any(line.startswith("finding: cler vs linear_probe over 4 sets: Pearson") for line in lines)
    assert lines[-1] == "finding: linear_probe ti_original 15.0 % vs simple_template 13.0 %"
    table.loc[1:3, "fd"] = 5.0
    assert (
        study_findings(table, correlations, targets=targets)[2].startswith("FAIL")
        and "constant ['fd']" in study_findings(table, correlations, targets=targets)[2]
    )
    # a config without targets prints the findings alone
    assert all(line.startswith("finding: ") for line in study_findings(table, correlations))


def test_targets_hold_for_the_config_file_that_states_them(tmp_path):
    from genbench.core.errors import ConfigError
    from genbench.plan.validate import load_run_config
    from genbench.report.findings import target_lines, targets_of

    demo = load_run_config([])
    assert targets_of(demo, []) == demo["report"]["targets"]  # the demo: config.yaml's own
    mine = tmp_path / "mine.yaml"
    mine.write_text("datasets: [digits]\n")
    assert targets_of(load_run_config([str(mine)]), [str(mine)]) == {}  # not inherited from the demo
    mine.write_text("report: {targets: {zero_shot_min: 50}}\n")
    assert targets_of(load_run_config([str(mine)]), [str(mine)]) == {"zero_shot_min": 50}
    table = pd.DataFrame({"source": ["original"], "strategy": ["-"], "linear_probe": [60.0], "zero_shot": [40.0]})
    assert target_lines(table, {"zero_shot_min": 50}, "linear_probe")[0].startswith("FAIL zero-shot 40.0 %")
    with pytest.raises(ConfigError, match="report.targets: unknown"):
        target_lines(table, {"zero_shot_max": 50}, "linear_probe")


def test_training_times_come_from_the_benchmark_files_and_the_logs(tmp_path):
    import os

    from genbench.report.findings import training_finding, training_times

    jobs = []
    for stage, seconds, start, end in [
        ("train_encoder", 120.0, 1000.0, 1121.0),
        ("train_generator", 150.5, 1125.0, 1290.0),
    ]:
        bench, log = tmp_path / f"{stage}.tsv", tmp_path / f"{stage}.log"
        bench.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:02:00\t100\n")
        local = pd.Timestamp.fromtimestamp(start).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]  # loguru's format
        log.write_text(f"{local} | INFO     | genbench.workflow.job:start_job:140 - {stage}: ...\nmore\n")
        os.utime(log, (end, end))
        jobs.append({"stage": stage, "benchmark": str(bench), "log": str(log)})
    times = training_times(jobs)
    assert times["per_stage"] == {"train_encoder": 120.0, "train_generator": 150.5}
    assert times["total"] == pytest.approx(270.5)
    assert times["elapsed"] == pytest.approx(290.0, abs=0.01)
    (line,) = training_finding(times, 300)
    assert line.startswith("PASS training stages took 4m50s from the first start to the last end (target <= 5m00s)")
    assert "4m30s of job time in all (train_encoder 2m00s, train_generator 2m30s)" in line
    os.utime(tmp_path / "train_generator.log", (1400.0, 1400.0))
    assert training_finding(training_times(jobs), 300)[0].startswith("FAIL training stages took 6m40s")
    (tmp_path / "train_generator.tsv").unlink()
    assert training_times(jobs)["elapsed"] is None and training_finding(training_times(jobs), 300) == []


def _two_generator_table():
    rng = np.random.default_rng(5)
    rows = [{"source": "original", "strategy": "-", "generator": "-", "linear_probe": 60.0, "cler": 58.0, "fd": 30.0}]
    rows.append(
        {"source": "retrieval", "strategy": "-", "generator": "-", "linear_probe": 50.0, "cler": 48.0, "fd": 90.0}
    )
    for generator, slope in (("sd21", 1.0), ("sdxl", -1.0)):
        for i in range(5):
            probe = 40.0 + 3 * i
            rows.append(
                {
                    "source": "generated",
                    "strategy": f"s{i}",
                    "generator": generator,
                    "linear_probe": probe,
                    "cler": 40.0 + slope * 3 * i + rng.normal(),
                    "fd": 200.0 - 10 * i,
                }
            )
    table = pd.DataFrame(rows)
    table["gain"] = table["linear_probe"] - 45.0
    table["dataset"] = "digits"
    return table


def test_correlations_per_generator_and_over_every_set():
    from genbench.report.correlations import correlation_table, pooled_rows

    table = _two_generator_table()
    corr = correlation_table(table)
    assert list(corr.columns[:2]) == ["generator", "metric"]
    assert set(corr.generator) == {"all", "sd21", "sdxl"}
    cler = corr[corr.metric == "cler"].set_index("generator")
    assert cler.loc["all", "n"] == 12 and cler.loc["sd21", "n"] == cler.loc["sdxl", "n"] == 7  # its 5 + the 2 shared
    assert cler.loc["sd21", "pearson"] > cler.loc["sdxl", "pearson"] + 0.3  # opposite trends, told apart
    pd.testing.assert_frame_equal(
        pooled_rows(corr).drop(columns="generator").reset_index(drop=True), metric_correlations(table)
    )
    # without the axis: the table as before, no generator column
    one = table[table.generator.isin(["-", "sd21"])]
    pd.testing.assert_frame_equal(correlation_table(one.drop(columns="generator")), metric_correlations(one))


def test_plots_mark_each_generator(tmp_path):
    from genbench.report.correlations import correlation_table
    from genbench.report.plots import plot_correlations, plot_gain

    table = _two_generator_table()
    plot_correlations(table, correlation_table(table), tmp_path / "corr.png")
    plot_gain(table, tmp_path / "gain.png")
    assert (tmp_path / "corr.png").stat().st_size > 1000 and (tmp_path / "gain.png").stat().st_size > 1000
