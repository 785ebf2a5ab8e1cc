"""Tests for sharded, deterministic, resumable image sampling (genbench.generation.sampling)."""

import io
import json
import os
import socket
import subprocess
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.artifacts import remove_stale_staging
from genbench.core.errors import ConfigError
from genbench.data.imageset import load_image, read_index
from genbench.generation.prompts import make_prompt_plan
from genbench.generation.sampling import (
    SamplingParams,
    image_id,
    load_sampling_pipeline,
    num_shards,
    sample_shard,
    split_into_shards,
    to_uint8,
    write_image_index,
)
from genbench.models.generators import load_text_to_image_pipeline
from genbench.models.tiny import build_tiny_stable_diffusion

torch.set_num_threads(1)

SETTINGS = {"steps": 2, "guidance": 7.5, "height": 64, "width": 64, "output_size": 48}
FIXED = {"scheduler": None, "resize_filter": "bicubic", "dtype": "auto", "shard_size": 40, "safety_checker": False}


def settings(**changes) -> SamplingParams:
    """The sampling params of these tests (64 px, 2 steps, saved at 48 px), with ``changes``."""
    return SamplingParams(**{**FIXED, "device": "cpu", **SETTINGS, **changes})


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    model_dir = build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"), seed=0)
    return load_text_to_image_pipeline(str(model_dir))


@pytest.fixture(scope="module")
def plan():
    params = {"images_per_class": 3, "negative_prompts": {"other_classes": 1}}
    return make_prompt_plan("simple_template", ["cat", "dog"], None, params, seed=11)


def tar_pixels(path):
    """{member name: uint8 array} of the PNGs in a shard."""
    with tarfile.open(path) as tar:
        return {
            m.name: np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())))
            for m in tar.getmembers()
            if m.name.endswith(".png")
        }


def test_split_into_shards_is_contiguous():
    rows = list(range(10))
    assert num_shards(10, 4) == 3 and num_shards(8, 4) == 2 and num_shards(0, 4) == 0
    assert split_into_shards(rows, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ConfigError, match="shard_size"):
        num_shards(10, 0)


def test_same_config_and_seed_give_byte_identical_shards(pipe, plan, tmp_path):
    first = sample_shard(pipe, plan, tmp_path / "a.tar", settings(batch_size=4))
    second = sample_shard(pipe, plan, tmp_path / "b.tar", settings(batch_size=4))
    assert first == {"images": 6, "black_or_nan": 0, "truncated_prompts": 0} == second
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and len(names) == 12
        assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}
        meta = json.load(tar.extractfile("0001-000004.json"))
    assert meta == {
        "id": "0001-000004",
        "class_id": 1,
        "class_name": "dog",
        "prompt": "dog",
        "negative_prompt": plan[4]["negative_prompt"],
        "seed": plan[4]["seed"],
        "black": False,
    }
    assert all(p.shape == (48, 48, 3) for p in tar_pixels(tmp_path / "a.tar").values())
    assert not list(tmp_path.glob("*.tmp-*"))


def test_batch_size_does_not_change_pixels(pipe, plan, tmp_path):
    sample_shard(pipe, plan, tmp_path / "b1.tar", settings(batch_size=1))
    sample_shard(pipe, plan, tmp_path / "b3.tar", settings(batch_size=3))
    one, three = tar_pixels(tmp_path / "b1.tar"), tar_pixels(tmp_path / "b3.tar")
    assert one.keys() == three.keys()
    for name in one:
        assert np.abs(one[name].astype(int) - three[name].astype(int)).max() <= 1, name
    distinct = {arr.tobytes() for arr in one.values()}
    assert len(distinct) == 6  # each image has its own seed


def test_resume_resamples_only_the_missing_shard(pipe, plan, tmp_path):
    shards = split_into_shards(plan, 2)
    paths = [tmp_path / f"shard-{i:05d}.tar" for i in range(len(shards))]
    for rows, path in zip(shards, paths):
        sample_shard(pipe, rows, path, settings(batch_size=2))
    original = paths[1].read_bytes()
    paths[1].unlink()
    # a killed job's temporary file: this host, a pid that no longer exists
    leftover = tmp_path / f".shard-00001.tar.tmp-{socket.gethostname()}-{dead_pid()}-0123abcd"
    leftover.write_bytes(b"partial")
    removed = remove_stale_staging(tmp_path)
    assert [path for path, _ in removed] == [leftover] and not leftover.exists()
    sample_shard(pipe, shards[1], paths[1], settings(batch_size=2))
    assert paths[1].read_bytes() == original


def dead_pid() -> int:
    """A pid that no process has now (a child that has exited and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_image_index_points_into_shards(pipe, plan, tmp_path):
    paths = []
    for i, rows in enumerate(split_into_shards(plan, 4)):
        paths.append(tmp_path / "shards" / f"{i}.tar")
        sample_shard(pipe, rows, paths[-1], settings(batch_size=4))
    index_path = tmp_path / "images.jsonl"
    assert write_image_index(paths, index_path) == 6
    records = read_index(index_path)
    assert [r["id"] for r in records] == [image_id(row) for row in plan]
    assert records[3] == {
        "id": "0001-000003",
        "path": "shards/0.tar@0001-000003.png",
        "label": 1,
        "prompt": "dog",
        "seed": plan[3]["seed"],
    }
    image = load_image(index_path, records[5])
    assert image.size == (48, 48) and np.array_equal(np.asarray(image), tar_pixels(paths[1])["0001-000005.png"])


class _FakePipe:
    """Stands in for a pipeline that returns one black, one NaN and one normal image."""

    tokenizer = None

    def __call__(self, prompt, generator, **kwargs):
        images = np.full((len(prompt), 8, 8, 3), 0.5, dtype=np.float32)
        images[0] = 0.0
        images[1, 0, 0, 0] = np.nan
        return SimpleNamespace(images=images)


def test_black_and_nan_images_are_counted_and_flagged(plan, tmp_path):
    stats = sample_shard(
        _FakePipe(),
        plan[:3],
        tmp_path / "bad.tar",
        settings(steps=1, guidance=1.0, height=8, width=8, output_size=8, batch_size=3),
    )
    assert stats["black_or_nan"] == 2
    with tarfile.open(tmp_path / "bad.tar") as tar:
        flags = [json.load(tar.extractfile(f"{image_id(r)}.json"))["black"] for r in plan[:3]]
    assert flags == [True, True, False]
    pixels, bad = to_uint8(np.full((2, 2, 3), 1.0, dtype=np.float32))
    assert not bad and pixels.max() == 255


def test_bad_filter_and_truncated_prompts(pipe, tmp_path):
    rows = make_prompt_plan("simple_template", ["cat " * 80], None, {"images_per_class": 1}, seed=0)
    with pytest.raises(ConfigError) as err:
        sample_shard(pipe, rows, tmp_path / "x.tar", settings(batch_size=1, resize_filter="fancy"))
    assert all(name in str(err.value) for name in ("bicubic", "bilinear", "lanczos", "nearest", "box"))
    assert not os.path.exists(tmp_path / "x.tar")
    stats = sample_shard(pipe, rows, tmp_path / "x.tar", settings(batch_size=1, resize_filter="lanczos"))
    assert stats["truncated_prompts"] == 1


def _with_speed_options(model_dir, **options):
    return load_sampling_pipeline(str(model_dir), settings(**options))


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd_speed"), seed=0)


@pytest.mark.parametrize(
    "options",
    [
        {"attention": "eager"},
        {"channels_last": True},
        pytest.param({"compile": True}, marks=pytest.mark.workflow, id="compile (about a minute)"),
    ],
    ids=str,
)
def test_speed_options_change_pixels_by_at_most_one_level(tiny_sd_dir, plan, tmp_path, options):
    """On CPU: eager attention vs SDPA, NHWC vs NCHW and the compiled UNet differ from the
    default in float32 by about 1e-6, so a PNG pixel moves by at most one level of 255."""
    sample_shard(_with_speed_options(tiny_sd_dir), plan, tmp_path / "default.tar", settings(batch_size=3))
    sample_shard(_with_speed_options(tiny_sd_dir, **options), plan, tmp_path / "fast.tar", settings(batch_size=3))
    default, fast = tar_pixels(tmp_path / "default.tar"), tar_pixels(tmp_path / "fast.tar")
    assert default.keys() == fast.keys()
    for name in default:
        assert np.abs(default[name].astype(int) - fast[name].astype(int)).max() <= 1, (options, name)


def test_unknown_attention_names_the_key(pipe):
    from genbench.models.generators import apply_speed_options

    with pytest.raises(ConfigError, match=r"generation.attention: unknown 'flash'; valid: sdpa, eager"):
        apply_speed_options(pipe, attention="flash")


def test_speed_options_are_keyed_only_off_their_defaults(tmp_path):
    from workflow_helpers import quick_config

    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    def sample_keys(**generation):
        config = load_run_config([quick_config(tmp_path, generation={"steps": 2, **generation})])
        config["results_dir"] = str(tmp_path / "results")
        return {n.label: n.key for n in build_plan(config).nodes.values() if n.stage == "sample_images"}

    base = sample_keys()
    assert sample_keys(attention="sdpa", channels_last=False, compile=False) == base
    assert set(sample_keys(channels_last=True).values()).isdisjoint(base.values())
    assert set(sample_keys(attention="eager").values()).isdisjoint(base.values())
