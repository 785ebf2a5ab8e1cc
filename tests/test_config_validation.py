"""validate_config / load_config: every value is checked in-process, each problem naming its key."""

import copy
import pickle
import re

import pytest
import yaml

from genbench.core.config import DEFAULT_CONFIG, load_config, looks_like_local_path
from genbench.core.errors import ConfigError
from genbench.plan.validate import validate_config


@pytest.fixture(scope="module")
def default_config():
    return load_config(DEFAULT_CONFIG)


@pytest.fixture
def config(default_config):
    """A fresh copy of the embedded default config (the CPU demo) to modify."""
    return copy.deepcopy(default_config)


def _error(config) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    return str(err.value)


def _user_dataset(classes):
    return {"classes": classes, "source": {"type": "folder", "path": "/data/zoo"}}


def test_default_config_is_valid(config):
    validate_config(config)


# 1. per_dataset overrides: the top-level section's schema, required keys relaxed


def test_per_dataset_section_unknown_key_is_named_with_allowed_keys(config):
    config["per_dataset"] = {"digits": {"probe": {"sed": 1}}}
    message = _error(config)
    assert "config key 'per_dataset.digits.probe.sed': unknown key(s) 'sed'" in message
    assert "allowed keys: epochs_final, epochs_search, lrs, seed" in message


def test_per_dataset_section_values_are_typed_and_required_is_relaxed(config):
    config["per_dataset"] = {"digits": {"fewshot": {"shots": [10]}, "generation": {"steps": 0}}}
    message = _error(config)  # fewshot without seeds is fine; steps 0 is not
    assert message.startswith("config key 'per_dataset.digits.generation.steps': ")
    config["per_dataset"]["digits"]["generation"]["steps"] = 3
    validate_config(config)


def test_per_dataset_strategies_and_sources_are_validated_like_the_top_level(config):
    config["per_dataset"] = {"digits": {"strategies": ["no_such"], "sources": ["invented"]}}
    message = _error(config)
    assert "config key 'per_dataset.digits.sources[0]': 'invented' is not one of" in message
    config["per_dataset"]["digits"]["sources"] = ["original"]
    assert _error(config).startswith("config key 'per_dataset.digits.strategies': unknown prompt strategy 'no_such'")


# 2. data.roots names only listed datasets


def test_data_roots_of_an_unlisted_dataset_is_named(config):
    config["data"]["roots"] = {"digits": "/data/digits", "cifar-10": "/data/cifar"}
    assert _error(config).startswith("config key 'data.roots.cifar-10': 'cifar-10' is not in 'datasets'")


# 3. integers are ints: not 2.0, not booleans


@pytest.mark.parametrize("value", [2.0, True])
def test_integer_keys_reject_floats_and_booleans(config, value):
    config["generation"]["shard_size"] = value
    assert _error(config) == f"config key 'generation.shard_size': expected integer, got {value!r}"
    del config["generation"]["shard_size"]
    config["generation"]["steps"] = value  # a sweepable key: an integer, or a list of them
    assert (
        _error(config)
        == f"config key 'generation.steps': expected integer, got {value!r}; or expected array, got {value!r}"
    )


# 4. strategy params: known strategy, allowed keys (ti_*: those of the base strategy, plus base)


def test_misspelt_strategy_param_is_named_with_the_valid_ones(config):
    config["strategy_params"]["lang_enc"]["num_templats"] = 3
    message = _error(config)
    assert message.startswith("config key 'strategy_params.lang_enc.num_templats': unknown param 'num_templats'")
    assert "valid: ['detail_suffix', 'images_per_class', 'images_per_template'" in message


def test_strategy_params_of_unknown_strategy_and_ti_base_keys(config):
    config["strategy_params"]["ti_original"] = {"base": "lang_enc", "num_templates": 2}
    validate_config(config)  # a ti strategy takes its base strategy's params
    config["per_dataset"] = {
        "digits": {"strategy_params": {"ti_original": {"num_templates": 3, "file": "x"}, "no_such": {}}}
    }
    message = _error(config)  # the override inherits base lang_enc, which has no 'file'
    assert "config key 'per_dataset.digits.strategy_params.ti_original.file': unknown param 'file'" in message
    assert "config key 'per_dataset.digits.strategy_params.no_such': unknown prompt strategy 'no_such'" in message
    assert "num_templates" not in message.split("valid")[0]


def test_config_module_does_not_import_the_plan():
    import genbench.core.config

    source = open(genbench.core.config.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(from genbench\.plan|from genbench import plan|import genbench\.plan)", source, re.M)


# 5. local paths: weights/vit.pt is a path (checked), org/name a hub id


def test_relative_weights_file_with_one_slash_must_exist(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config["models"]["encoder"] = {"type": "open_clip", "model": "ViT-B-32", "pretrained": "weights/vit.pt"}
    assert _error(config) == "config key 'models.encoder.pretrained': path weights/vit.pt does not exist"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "vit.pt").write_bytes(pickle.dumps({}, protocol=2))  # a (legacy-format) state dict
    validate_config(config)


@pytest.mark.parametrize(
    "value, local",
    [
        ("weights/vit.pt", True),
        ("vit.safetensors", True),
        ("/abs/model", True),
        ("./model", True),
        ("~/model", True),
        ("a/b/c", True),
        ("stabilityai/stable-diffusion-2-1-base", False),
        ("openai", False),
        ("ViT-B-32", False),
        ("", False),
    ],
)
def test_looks_like_local_path(value, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_local_path(value) is local


# 6. YAML errors: one line naming the file and line


def test_yaml_syntax_error_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("datasets: [digits]\ngeneration:\n  steps: 4\n  bad: [1, 2\nthreads: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert re.fullmatch(rf"config file {re.escape(str(path))}, line [45]: .+", message), message
    mark = _yaml_mark(path)
    assert message.startswith(f"config file {path}, line {mark}: ")


def _yaml_mark(path) -> int:
    try:
        yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as err:
        return err.problem_mark.line + 1
    raise AssertionError("expected a YAML error")


def test_missing_config_file_is_named(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"^config file {re.escape(str(path))} does not exist$"):
        load_config(path)


# 7. class names: no control characters, no case-only duplicates


@pytest.mark.parametrize("bad", ["new\nline", "tab\there", "nul\x00"])
def test_class_name_with_a_control_character_is_named_with_its_index(config, bad):
    config["datasets"] = ["digits", "zoo"]
    config["user_datasets"] = {"zoo": _user_dataset(["cat", "dog", bad])}
    message = _error(config)
    assert message.startswith("config key 'user_datasets.zoo.classes': class 2 ")
    assert "control character" in message


def test_labels_file_line_with_a_control_character_is_named(config, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbad\x1bname\n", encoding="utf-8")
    config["datasets"] = ["digits", "zoo"]
    config["user_datasets"] = {"zoo": {"labels_file": str(labels), "source": {"type": "folder", "path": "/z"}}}
    message = _error(config)
    assert message.startswith("config key 'user_datasets.zoo.labels_file': class 2 ('bad\\x1bname')")
    assert "control character" in message


def test_case_only_duplicate_class_names_are_named(config):
    config["datasets"] = ["digits", "zoo"]
    config["user_datasets"] = {"zoo": _user_dataset(["Cat", "dog", "cat"])}
    message = _error(config)
    assert message.startswith("config key 'user_datasets.zoo.classes': classes 0 ('Cat') and 2 ('cat')")
    assert "letter case" in message


def test_class_names_equal_after_unicode_normalisation_are_named_in_both_spellings(config):
    composed, decomposed = "caf\u00e9", "cafe\u0301"  # print the same
    config["datasets"] = ["digits", "zoo"]
    config["user_datasets"] = {"zoo": _user_dataset([composed, "tea", decomposed])}
    message = _error(config)
    assert message.startswith("config key 'user_datasets.zoo.classes': classes 0 ('caf\\xe9') and 2 ('cafe\\u0301')")
    assert "Unicode normalisation" in message


def test_unknown_dataset_is_named(config):
    config["datasets"] = ["digits", "no-such-dataset"]
    assert _error(config).startswith("config key 'datasets': unknown dataset 'no-such-dataset'")


# 8. fewshot.on_shortfall


def test_fewshot_on_shortfall_is_optional_and_an_enum(config):
    assert config["fewshot"]["on_shortfall"] == "warn"
    del config["fewshot"]["on_shortfall"]
    validate_config(config)
    config["fewshot"]["on_shortfall"] = "error"
    validate_config(config)
    config["fewshot"]["on_shortfall"] = "ignore"
    assert _error(config) == "config key 'fewshot.on_shortfall': 'ignore' is not one of ['error', 'warn']"


# every problem at once, one line each


def test_several_problems_are_listed_one_line_each(config):
    config["generation"]["steps"] = 2.0
    config["probe"]["sed"] = 1
    lines = _error(config).splitlines()
    assert lines[0] == "invalid config, 2 problems:"
    assert sorted(line.strip().split("'")[1] for line in lines[1:]) == ["generation.steps", "probe.sed"]


def test_faiss_index_needs_a_pool_folder(config):
    config["retrieval"]["index"] = "faiss"
    assert "config key 'retrieval.index': faiss needs a pool folder" in _error(config)
    config["retrieval"]["index"] = "annoy"
    assert "config key 'retrieval.index'" in _error(config)


def test_removed_probe_mode_is_named(config):
    config["probe"]["mode"] = "elevater"
    assert "config key 'probe.mode': unknown key(s) 'mode'" in _error(config)


def test_a_pretrained_file_that_is_no_checkpoint_is_named_at_parse_time(config, tmp_path):
    """Not the UnpicklingError traceback of the first job that loads it."""
    notes = tmp_path / "weights.pt"
    notes.write_text("these are my notes, not weights\n")
    config["models"]["encoder"] = {"type": "open_clip", "model": "ViT-B-32", "pretrained": str(notes)}
    message = _error(config)
    assert message.startswith(f"config key 'models.encoder.pretrained': {notes} is not a checkpoint")
    assert "\n" not in message.strip()


def test_checkpoint_files_of_every_format_pass(tmp_path):
    import torch
    from safetensors.torch import save_file

    from genbench.core.config import is_checkpoint_file

    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    (tmp_path / "empty.bin").write_bytes(b"")
    assert all(is_checkpoint_file(tmp_path / n) for n in ("zip.pt", "legacy.pt", "w.safetensors"))
    assert not is_checkpoint_file(tmp_path / "empty.bin")


def test_a_one_class_dataset_is_refused_at_parse_time(config):
    from genbench.plan.build import build_plan

    config["datasets"] = ["one"]
    config["user_datasets"] = {"one": _user_dataset(["cat"])}
    with pytest.raises(ConfigError, match="dataset 'one' has 1 class; a benchmark needs at least 2"):
        build_plan(config)


def test_sets_too_small_for_the_distance_metrics_are_refused_at_parse_time(config):
    from genbench.plan.build import build_plan

    config["datasets"] = ["pair"]
    config["user_datasets"] = {"pair": _user_dataset(["cat", "dog"])}
    config["fewshot"]["shots"] = [2, 5]
    with pytest.raises(ConfigError, match=r"dataset 'pair': fewshot.shots 2 x 2 classes = 4 images a set, fewer than"):
        build_plan(config)


def test_a_results_folder_holding_only_other_files_is_refused(tmp_path):
    from genbench.core.config import check_results_dir

    home = tmp_path / "home"
    (home / "Documents" / "thesis").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=f"config key 'results_dir': {home} is not empty and holds nothing GenBench"):
        check_results_dir(str(home))
    check_results_dir(str(tmp_path / "new"))  # new: created
    check_results_dir(str(tmp_path / "new"))  # empty: fine
    copied = tmp_path / "copied"  # results copied without .genbench/: still GenBench's
    (copied / "features" / "digits" / "train-0123456789ab").mkdir(parents=True)
    (copied / "features" / "digits" / "train-0123456789ab" / "MANIFEST.json").write_text("{}")
    check_results_dir(str(copied))
    (home / ".genbench").mkdir()
    check_results_dir(str(home))
