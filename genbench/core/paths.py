"""The one path scheme of a results folder. Rules and the package both build paths here.

    <results>/<stage>/<scope>/<label>-<key>/MANIFEST.json     an artifact (scope: the dataset,
                                                            or a model role for build_models)
    <results>/<stage>/<scope>/<label>-<key>/shards/shard-00000.tar   (+ shard-00000.json)
    <results>/<stage>/<scope>/<label>-<key>/tokens/class-00000.safetensors (+ class-00000.json)
    <results>/logs/<stage>/<scope>/<label>-<key>.log         its log (parts: .../<folder>/00000.log)
    <results>/.genbench/                                      run lock, stat cache, fingerprints

``key`` is the first 12 hex digits of the artifact's recipe key and alone decides identity.
``label`` is a short readable name made from the params (``k5-s0``, ``simple_template``,
``generated-lang_enc-k5-s0``) so that a person finds 5-shot seed 0 without the CLI; an
artifact without one is named by its key alone.
"""

from __future__ import annotations

import re

from genbench.core.artifacts import MANIFEST, SHORT_KEY_LENGTH, STAGING_PREFIX, named_by_key  # noqa: F401
from genbench.core.errors import ConfigError

STATE_DIR = ".genbench"
SHARDS_DIR = "shards"
TOKENS_DIR = "tokens"
ADAPTERS_DIR = "adapters"
PART_DIGITS = 5

_LABEL_CHARS = re.compile(r"[^a-z0-9_.+]+")
# A folder name: an optional label (words of [a-z0-9_.+] joined by "-"), then the key.
FOLDER_PATTERN = rf"(?:[a-z0-9_.+]+-)*[0-9a-f]{{{SHORT_KEY_LENGTH}}}"
_FOLDER_RE = re.compile(rf"^{FOLDER_PATTERN}$")
SCOPE_PATTERN = r"[A-Za-z0-9_.+-]+"
PART_PATTERN = rf"[0-9]{{{PART_DIGITS}}}"


def clean_label(text: str) -> str:
    """``text`` as a folder label: lower case, runs of other characters as "_"."""
    return _LABEL_CHARS.sub("_", str(text).lower()).strip("_")


def folder_name(label: str, short: str) -> str:
    """``<label>-<short key>``, or the short key alone."""
    label = "-".join(part for part in (clean_label(p) for p in label.split("-")) if part)
    return f"{label}-{short}" if label else short


def is_artifact_folder(name: str) -> bool:
    return bool(_FOLDER_RE.match(name))


def short_key_of(folder: str) -> str:
    """The short key a folder name ends with."""
    return folder[-SHORT_KEY_LENGTH:]


def artifact_dir(results: str, stage: str, scope: str, folder: str) -> str:
    return f"{results}/{stage}/{scope}/{folder}"


def manifest_path(results: str, stage: str, scope: str, folder: str) -> str:
    return f"{artifact_dir(results, stage, scope, folder)}/{MANIFEST}"


def log_path(results: str, stage: str, scope: str, folder: str) -> str:
    return f"{results}/logs/{stage}/{scope}/{folder}.log"


def shard_path(artifact: str, index: int) -> str:
    """A sampling shard of a sample_images artifact."""
    return f"{artifact}/{SHARDS_DIR}/shard-{index:0{PART_DIGITS}d}.tar"


def token_path(artifact: str, class_id: int) -> str:
    """One class's learned token of a textual_inversion artifact."""
    return f"{artifact}/{TOKENS_DIR}/class-{class_id:0{PART_DIGITS}d}.safetensors"


def adapter_file(part: int) -> str:
    """One LoRA of a lora artifact, under its folder: part 0 the dataset's, or part c class c's."""
    return f"{ADAPTERS_DIR}/adapter-{part:0{PART_DIGITS}d}.safetensors"


def adapter_path(artifact: str, part: int) -> str:
    return f"{artifact}/{adapter_file(part)}"


# Snakemake patterns: the same scheme with wildcards {scope}, {folder} and {part}.


def manifest_pattern(results: str, stage: str) -> str:
    return manifest_path(results, stage, "{scope}", "{folder}")


def log_pattern(results: str, stage: str) -> str:
    return log_path(results, stage, "{scope}", "{folder}")


def shard_pattern(results: str) -> str:
    return f"{artifact_dir(results, 'sample_images', '{scope}', '{folder}')}/{SHARDS_DIR}/shard-{{part}}.tar"


def token_pattern(results: str) -> str:
    return (
        f"{artifact_dir(results, 'textual_inversion', '{scope}', '{folder}')}/{TOKENS_DIR}/class-{{part}}.safetensors"
    )


def adapter_pattern(results: str) -> str:
    return f"{artifact_dir(results, 'lora', '{scope}', '{folder}')}/{ADAPTERS_DIR}/adapter-{{part}}.safetensors"


def part_manifest_pattern(data_pattern: str) -> str:
    """``.../shard-{part}.tar`` -> ``.../shard-{part}.json``."""
    return data_pattern.rsplit(".", 1)[0] + ".json"


def part_log_pattern(results: str, stage: str) -> str:
    return f"{results}/logs/{stage}/{{scope}}/{{folder}}/{{part}}.log"


def num_shards(n: int, shard_size: int) -> int:
    """Number of shards of at most ``shard_size`` rows needed for ``n`` rows: ceil(n / size)."""
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    return (n + shard_size - 1) // shard_size


def split_into_shards(rows: list, shard_size: int) -> list[list]:
    """``rows`` cut into contiguous shards of ``shard_size`` rows (the last may be shorter)."""
    return [rows[i * shard_size : (i + 1) * shard_size] for i in range(num_shards(len(rows), shard_size))]


def benchmark_pattern(results: str, stage: str) -> str:
    """Snakemake's ``benchmark:`` file of a job (time, memory), for ``snakemake --report``."""
    return f"{results}/benchmarks/{stage}/{{scope}}/{{folder}}.tsv"


def part_benchmark_pattern(results: str, stage: str) -> str:
    return f"{results}/benchmarks/{stage}/{{scope}}/{{folder}}/{{part}}.tsv"
