"""Matched budgets: seeded packs for every source, scaling curves, break-even points and the
cluster bootstrap of the correlations."""

import numpy as np
import pandas as pd
import pytest

from genbench.core.errors import ConfigError, GenBenchError
from genbench.evaluation.external import draw_seeded, select_records
from genbench.report.correlations import bootstrap_interval, correlation_rows, weighted_correlation_rows
from genbench.report.scaling import (
    NEVER,
    break_even_table,
    combined_gain,
    matches,
    plot_scaling,
    scaling_report,
    scaling_table,
)

# ----------------------------------------------------------------------------- seeded packs


def _records(per_class=10, classes=3):
    return [
        {"id": f"{c}-{i}", "label": c, "similarity": float(per_class - i)}
        for c in range(classes)
        for i in range(per_class)
    ]


def test_each_seed_draws_its_own_pack_from_the_top_m_and_a_seed_repeats_its_pack():
    records = _records()
    packs = {}
    for seed in (0, 1, 2):
        chosen, counts, shortfall = select_records(records, 3, "similarity", seed, 3, draw_from=6)
        packs[seed] = [r["id"] for r in chosen]
        assert counts == [3, 3, 3] and shortfall == {}
        assert all(int(r["id"].split("-")[1]) < 6 for r in chosen)  # only the top 6 by similarity
    assert len({tuple(p) for p in packs.values()}) == 3
    again = select_records(records, 3, "similarity", 1, 3, draw_from=6)[0]
    assert [r["id"] for r in again] == packs[1]
    # without draw_from: the top K, whatever the seed
    top = [r["id"] for r in select_records(records, 3, "similarity", 5, 3)[0]]
    assert top == [f"{c}-{i}" for c in range(3) for i in range(3)]


def test_a_draw_from_the_top_k_is_the_top_k_and_a_draw_below_k_is_refused():
    labels = np.repeat(np.arange(2), 5)
    scores = np.arange(10, dtype=float)
    top, counts, _ = draw_seeded(labels, 2, 2, seed=4, scores=scores, num_classes=2)
    assert top.tolist() == [3, 4, 8, 9] and counts == [2, 2]
    first, _, _ = draw_seeded(labels, 2, 2, seed=4, scores=None, num_classes=2)  # no scores: index order
    assert first.tolist() == [0, 1, 5, 6]
    with pytest.raises(GenBenchError, match="draw_from 1 is below K = 2"):
        draw_seeded(labels, 2, 1, seed=0, scores=scores, num_classes=2)


def _plan(**changes):
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config, validate_config

    config = load_run_config([])
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    validate_config(config)
    return build_plan(config)


def test_with_draw_from_generated_and_retrieved_sets_have_a_pack_per_seed():
    plan = _plan(pack={"draw_from": 8}, fewshot={"shots": [5], "seeds": [0, 1]})
    nodes = list(plan.nodes.values()) if isinstance(plan.nodes, dict) else list(plan.nodes)
    retrieval = [n for n in nodes if n.stage == "pack_retrieval"]
    assert sorted(n.params["seed"] for n in retrieval) == [0, 1] and len({n.key for n in retrieval}) == 2
    generated = [n for n in nodes if n.stage == "pack_generated"]
    assert {n.params["seed"] for n in generated} == {0, 1} and all(n.params["draw_from"] == 8 for n in generated)
    probes = [n.params["labels"] for n in nodes if n.stage == "elevater"]
    assert {(p["source"], p["seed"]) for p in probes} >= {("generated", 1), ("retrieval", 1), ("combined", 1)}
    retrieve = next(n for n in nodes if n.stage == "retrieve")
    assert retrieve.params["k_per_class"] == 8  # enough hits for the top M


def test_without_draw_from_the_keys_are_those_of_one_top_k_pack():
    nodes = _plan().nodes
    nodes = list(nodes.values()) if isinstance(nodes, dict) else list(nodes)
    assert all("draw_from" not in n.params for n in nodes if n.stage in ("pack_generated", "pack_retrieval"))


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"pack": {"draw_from": 4}}, "pack.draw_from"),
        ({"pack": {"draw_from": 20}}, "generation.images_per_class"),
        ({"pack": {"draw_from": 8}, "retrieval": {"k_per_class": 6}}, "retrieval.k_per_class"),
    ],
)
def test_a_draw_the_sets_cannot_hold_is_refused_at_parse_time(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _plan(**changes)


# ----------------------------------------------------------------------------- curves


def _results(rows):
    columns = ["dataset", "source", "strategy", "shots", "seed", "encoder", "linear_probe"]
    return pd.DataFrame([dict(zip(columns, r)) for r in rows])


def _study():
    """Retrieval at 40/60/80 (seed noise 1); generated A at 30/59.5/90 (matches at 2 shots,
    within one SE of 60 when SE=1); generated B always 20 points below: never."""
    rows = []
    for seed, noise in ((0, -1.0), (1, 1.0)):
        for k, ret, gen_a in ((1, 40.0, 30.0), (2, 60.0, 59.0), (4, 80.0, 90.0)):
            rows.append(("d", "retrieval", "-", k, seed, "e", ret + noise * np.sqrt(2)))
            rows.append(("d", "generated", "A", k, seed, "e", gen_a))
            rows.append(("d", "generated", "B", k, seed, "e", ret - 20))
            rows.append(("d", "original", "-", k, seed, "e", ret + 5 + noise))
            rows.append(("d", "combined", "A", k, seed, "e", ret + 8 + 2 * noise))
    return _results(rows)


def test_scaling_table_gives_the_mean_sd_and_se_over_seeds():
    curves = scaling_table(_study(), "linear_probe").set_index(["source", "strategy", "shots"])
    row = curves.loc[("retrieval", "-", 2)]
    assert row["n"] == 2 and row["mean"] == pytest.approx(60.0)
    assert row["sd"] == pytest.approx(2.0) and row["se"] == pytest.approx(np.sqrt(2))


def test_break_even_is_the_first_shot_count_within_one_se_or_above_and_never_is_an_answer():
    assert matches(59.0, 60.0, 1.0) and not matches(58.99, 60.0, 1.0)
    table = break_even_table(scaling_table(_study(), "linear_probe"))
    table = table.set_index(["generated", "reference"])["break_even"]
    assert table.loc[("generated/A", "retrieval")] == "2"  # 59 >= 60 - sqrt(2)
    assert table.loc[("generated/A", "original")] == "4"  # 59 < 65 - 1 at two shots
    assert table.loc[("generated/B", "retrieval")] == NEVER


def test_combined_sets_are_shown_as_their_gain_over_the_originals_paired_by_seed():
    gains = combined_gain(_study(), "linear_probe").set_index("shots")
    # combined - original = (ret + 8 + 2 noise) - (ret + 5 + noise) = 3 + noise: 2 and 4
    assert gains.loc[1, "gain_mean"] == pytest.approx(3.0) and gains.loc[1, "gain_se"] == pytest.approx(1.0)
    assert gains.loc[1, "n"] == 2


def test_the_scaling_report_and_its_figure_are_written(tmp_path):
    table = _study().assign(cler=lambda t: t.linear_probe / 2)
    report = scaling_report(table, "linear_probe")
    assert set(report["scaling.csv"]["metric"]) == {"linear_probe", "cler"}
    assert set(report["break_even.csv"]["metric"]) == {"linear_probe", "cler"}
    plot_scaling(report["scaling.csv"], tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 5000


# ----------------------------------------------------------------------------- cluster bootstrap


@pytest.mark.parametrize("kind", ["pearson", "spearman", "kendall"])
def test_weighted_coefficients_equal_the_coefficients_of_the_written_out_sample(kind):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 9).astype(float), rng.normal(size=9).round(1)
    counts = rng.integers(0, 3, size=(50, 9))
    counts[0] = [1, 0, 0, 0, 0, 0, 0, 0, 2]  # one distinct x: undefined
    ours = weighted_correlation_rows(kind, x, y, counts)
    for value, row in zip(ours, counts):
        expected = correlation_rows(kind, np.repeat(x, row), np.repeat(y, row))[0]
        assert (np.isnan(value) and np.isnan(expected)) or value == pytest.approx(expected, abs=1e-12)


def test_the_cluster_bootstrap_matches_a_hand_computed_case():
    """Two sets of two rows: A = (0, 0), (1, 1) and B = (2, 0), (3, 1). A resample is AA, BB
    (r = 1) or AB, BA (r = 1 / sqrt(5)), each half the time, so the 95 % interval is
    [1 / sqrt(5), 1]. Rows resampled one by one would also reach r < 0 (e.g. (1, 1), (2, 0))."""
    x, y = [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 0.0, 1.0]
    low, high = bootstrap_interval("pearson", x, y, samples=2000, seed=0, clusters=["A", "A", "B", "B"])
    assert low == pytest.approx(1 / np.sqrt(5)) and high == pytest.approx(1.0)
    row_low, _ = bootstrap_interval("pearson", x, y, samples=2000, seed=0)
    assert row_low < 0


def test_correlations_resample_whole_sets_and_are_given_per_shot_count():
    from genbench.report.correlations import correlation_table, pooled_rows

    table = _study().assign(cler=lambda t: t.linear_probe + np.arange(len(t)) % 3)
    corr = correlation_table(table)
    assert list(corr.columns[:2]) == ["shots", "metric"]
    cler = corr[corr.metric == "cler"].set_index("shots")
    assert set(cler.index) == {"all", "1", "2", "4"}
    assert cler.loc["all", "n"] == 30 and cler.loc["all", "sets"] == 5  # 5 sets, each over 3 shots x 2 seeds
    assert cler.loc["2", "n"] == 10
    assert len(pooled_rows(corr)) == len(corr[corr.shots == "all"])


def test_one_shot_is_refused_at_parse_time_naming_the_probe_split():
    with pytest.raises(ConfigError, match=r"fewshot\.shots 1: the linear probe holds out"):
        _plan(fewshot={"shots": [1, 5], "seeds": [0]})
