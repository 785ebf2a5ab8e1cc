"""Stage parameters (genbench.core.stage): one dataclass per stage, config -> recipe -> job."""

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from genbench.core.errors import ConfigError
from genbench.core.stage import StageParams, keyed, keyed_if_changed, runtime
from genbench.generation.sampling import SamplingParams
from genbench.plan.stages import STAGE_PARAMS, STAGE_VERSIONS

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class _Example(StageParams):
    STAGE: ClassVar[str] = "example"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "example"

    shots: int = keyed(key="k")
    option: str = keyed_if_changed("plain")
    batch_size: int = runtime(8)


def test_fields_enter_the_recipe_as_declared():
    params = _Example.from_config({"shots": 5, "batch_size": 2, "unrelated": 1})
    assert params.keyed() == {"k": 5}  # renamed, the option at its default left out
    assert params.runtime() == {"batch_size": 2}
    assert _Example(shots=5, option="fast").keyed() == {"k": 5, "option": "fast"}
    assert _Example.from_job({"k": 5}, {"batch_size": 2}) == params
    assert _Example.from_config({"shots": 1}, shots=3).shots == 3  # the plan's value wins
    with pytest.raises(ConfigError, match=r"example\.shots: missing"):
        _Example.from_config({})
    with pytest.raises(TypeError, match="no fields"):
        _Example.from_config({"shots": 1}, shot=3)


def test_every_stage_has_one_dataclass_with_its_version():
    stages = [cls.STAGE for cls in STAGE_PARAMS]
    assert len(stages) == len(set(stages)) == len(STAGE_VERSIONS)
    assert all(cls.VERSION >= 1 and dataclasses.is_dataclass(cls) for cls in STAGE_PARAMS)
    rules = {
        line.split()[1].rstrip(":")
        for f in (REPO / "rules").glob("*.smk")
        for line in f.read_text().splitlines()
        if line.startswith("rule ")
    }
    assert set(stages) <= rules | {"sample_images", "textual_inversion"}  # gathered from their part rules


def test_config_to_recipe_to_job_round_trip(monkeypatch):
    """Every planned artifact of the demo: the job's dataclass, rebuilt from the recipe's params
    and the runtime params, gives back the keyed and runtime params the plan wrote."""
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    monkeypatch.chdir(REPO)
    plan = build_plan(load_run_config([]))
    classes = {cls.STAGE: cls for cls in STAGE_PARAMS}
    seen = set()
    for node in plan.nodes.values():
        params = classes[node.stage].from_job(node.params, node.runtime)
        assert params.keyed().items() <= node.params.items(), node.stage
        assert params.runtime().items() <= node.runtime.items(), node.stage
        seen.add(node.stage)
    assert seen == set(STAGE_VERSIONS) - {"build_models"}  # the demo trains its models (no tiny ones)


def test_sampling_params_reach_the_diffusers_call(monkeypatch):
    """guidance: config -> SamplingParams -> recipe -> job -> the pipeline's guidance_scale."""
    from genbench.generation import sampling
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    monkeypatch.chdir(REPO)
    config = load_run_config([])
    config["generation"]["guidance"] = 3.25
    node = build_plan(config).by_stage("sample_images")[0]
    params = SamplingParams.from_job(node.params, node.runtime)
    calls = []

    class Pipe:
        tokenizer = None

        def __call__(self, **kwargs):
            import numpy as np

            calls.append(kwargs)
            return type("Out", (), {"images": np.zeros((len(kwargs["prompt"]), 4, 4, 3), np.float32)})()

    row = {"index": 0, "class_id": 0, "class_name": "zero", "prompt": "0", "negative_prompt": None, "seed": 1}
    monkeypatch.setattr(sampling, "write_tar_atomic", lambda path, members: None)
    sampling.sample_shard(Pipe(), [row], "x.tar", params)
    assert calls[0]["guidance_scale"] == 3.25 and calls[0]["num_inference_steps"] == params.steps


def test_planning_imports_no_heavy_package():
    """The Snakefile's plan (every stage dataclass included) loads neither torch nor PIL."""
    code = (
        "import sys\n"
        "from genbench.plan.validate import load_run_config\n"
        "from genbench.plan.build import build_plan\n"
        "build_plan(load_run_config([]))\n"
        "heavy = ('torch', 'PIL', 'pandas', 'sklearn', 'open_clip', 'diffusers', 'transformers', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
