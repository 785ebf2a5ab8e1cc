"""`snakemake --profile slurm`, the literal command users are told, works from the checkout."""

import os
import subprocess
import sys

import pytest
from workflow_helpers import REPO

from genbench.workflow.profiles import NAMED_PROFILES, REPO_PROFILES, install_profiles


def test_install_links_each_profile_once_and_keeps_the_users_own(tmp_path):
    target = tmp_path / "snakemake"
    mine = target / "slurm"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text("jobs: 3\n")
    messages = install_profiles(target)
    assert (target / "local").resolve() == (REPO_PROFILES / "local").resolve()
    assert (mine / "config.yaml").read_text() == "jobs: 3\n" and not mine.is_symlink()
    assert any("kept" in m and "'slurm'" in m and "--profile" in m for m in messages), messages
    again = install_profiles(target)
    assert any("already links" in m and "'local'" in m for m in again), again
    assert len(again) == len(NAMED_PROFILES)


@pytest.mark.workflow
def test_snakemake_profile_slurm_by_name_from_the_repository_root(tmp_path):
    config_home = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    subprocess.run([sys.executable, "-m", "genbench.workflow.cli", "install-profiles"], env=env, check=True, cwd=REPO)
    assert (config_home / "snakemake" / "slurm").is_symlink()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "--dry-run", "--directory", str(tmp_path / "work")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "no profile.yaml" not in output
    assert "sample_shard" in output and "Job stats" in output
