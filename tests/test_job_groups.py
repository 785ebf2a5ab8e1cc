"""Cluster job groups: one Slurm job per external set's evaluations (rules' `group:`)."""

from collections import Counter, defaultdict

import pytest
import yaml
from workflow_helpers import REPO, quick_config

from genbench.plan.build import EVALUATION_STAGES, build_plan, evaluation_group
from genbench.plan.validate import load_run_config


@pytest.fixture
def plan(tmp_path):
    sources = ["generated", "original", "combined", "retrieval"]
    config = load_run_config([quick_config(tmp_path, sources=sources)])
    config["results_dir"] = str(tmp_path / "results")
    return build_plan(config)


def test_each_external_set_is_one_group_holding_all_its_evaluations(plan):
    groups = defaultdict(Counter)
    for node in plan.nodes.values():
        if node.stage in EVALUATION_STAGES:
            groups[evaluation_group(node)][node.stage] += 1
    probes = [node for node in plan.nodes.values() if node.stage == "elevater"]
    assert len(groups) == len(probes)  # one probe per external set, one group per set
    assert groups["evaluate-digits-generated-simple_template-k3-s0"] == Counter(
        elevater=1, zeroshot_metric=1, distribution_metrics=1, proxy_distance=1
    )
    assert groups["evaluate-digits-combined-simple_template-k3-s0"] == Counter(elevater=1, zeroshot_metric=1)
    assert "evaluate-digits-original-k3-s0" in groups and "evaluate-digits-retrieval-k3-s0" in groups


def test_only_evaluation_stages_have_an_evaluation_group(plan):
    features = next(node for node in plan.nodes.values() if node.stage == "features")
    with pytest.raises(ValueError, match="features is not an evaluation stage"):
        evaluation_group(features)


@pytest.mark.parametrize("profile", ["slurm", "slurm-ci"])
def test_slurm_profiles_join_the_evaluation_groups_within_a_core_cap(profile):
    settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert "evaluate=20" in settings["group-components"]
    assert isinstance(settings["cores"], int) and settings["cores"] >= 2
