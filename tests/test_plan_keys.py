"""Artifact keys do not move when the code is reorganised.

A user's finished benchmark must not rerun because a parameter found a new home. This test plans
the demo (config.yaml) and the paper benchmark (configs/genbench.yaml) and compares, stage by
stage, a digest of every artifact key with ``tests/plan_keys.json``, written from the code as it
stood before stage parameters moved into their stage modules.

What lies outside the code is pinned, so the digests follow the code and the config alone: every
fingerprinted file or folder is keyed by its name, the bundled digits by a fixed scikit-learn
version, and hub ids by a fixed revision.

When a stage version is bumped on purpose (its bytes change), rewrite the file and say why in
the commit::

    .venv/bin/python tests/test_plan_keys.py --update
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("plan_keys.json")
CONFIGS = {"demo": [], "paper": ["configs/genbench.yaml"]}


def _pin_the_world(patch) -> None:
    """Fingerprints, package versions and hub revisions, fixed (patch(target, value))."""
    import genbench.plan.build as build

    def fingerprint(self, path):
        name = Path(str(path)).name
        return {"kind": "file", "sha256": hashlib.sha256(name.encode()).hexdigest()}

    patch(build.Plan, "fingerprint", fingerprint)
    patch(build, "_package_version", lambda name: f"{name}-pinned")
    patch(build, "hub_revision", lambda repo_id: f"{repo_id}@pinned")


def stage_digests(config_files: list[str]) -> dict[str, str]:
    """stage -> sha256 of the sorted ``scope/folder`` names of its planned artifacts (a folder
    name ends with the artifact's short key)."""
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    config = load_run_config([str(REPO / f) for f in config_files])
    config["results_dir"] = "results"
    plan = build_plan(config)
    folders = defaultdict(list)
    for node in plan.nodes.values():
        folders[node.stage].append(f"{node.scope}/{node.folder}/{node.key}")
    return {stage: hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest() for stage, names in folders.items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_artifact_key_is_the_one_written_before_the_redesign(name, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    _pin_the_world(monkeypatch.setattr)
    expected = json.loads(GOLDEN.read_text())[name]
    got = stage_digests(CONFIGS[name])
    moved = sorted(stage for stage in expected.keys() | got.keys() if expected.get(stage) != got.get(stage))
    assert not moved, f"{name}: the keys of {moved} changed (bump on purpose? see this module's docstring)"


def _update() -> None:
    import os

    os.chdir(REPO)
    undo = []

    def patch(target, attr, value):
        undo.append((target, attr, getattr(target, attr)))
        setattr(target, attr, value)

    _pin_the_world(patch)
    GOLDEN.write_text(json.dumps({n: stage_digests(f) for n, f in CONFIGS.items()}, indent=1, sort_keys=True) + "\n")
    for target, attr, value in reversed(undo):
        setattr(target, attr, value)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(__doc__)
    _update()
