"""Content-addressed artifacts: one key function, manifests, atomic writes and verification.

An artifact is a directory ``<results>/<stage>/<scope>/<short key>/`` (scope is the dataset,
or a role such as ``encoder`` for models). Its key is

    key = sha256(canonical_json({"stage", "version", "params", "inputs"}))

where ``inputs`` maps each upstream artifact's role name to that artifact's full key. Identical
recipes therefore share one directory, and any change of a param, of the stage version or of
an upstream key gives a new directory beside the old one.

A finished artifact holds ``MANIFEST.json`` (the recipe, the sha256 and size of every file, the
package version), written last and atomically: a directory without a manifest is unfinished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from genbench import __version__
from genbench.errors import GenBenchError

MANIFEST = "MANIFEST.json"
SHORT_KEY_LENGTH = 12
_STAGING_PREFIX = ".staging-"


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically: sorted keys, no whitespace, UTF-8, no NaN/inf."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise GenBenchError(f"a recipe cannot hold nan or inf values: {err}") from None
    except TypeError as err:
        raise GenBenchError(f"a recipe must be plain JSON (str keys, lists, numbers): {err}") from None


def make_recipe(stage: str, version: int, params: dict, inputs: dict[str, str]) -> dict:
    """The canonical recipe of an artifact: stage, stage version, params, upstream keys."""
    return {"stage": stage, "version": int(version), "params": params, "inputs": dict(inputs)}


def recipe_key(recipe: dict) -> str:
    """The full key of a recipe: the sha256 hex digest of its canonical JSON."""
    return hashlib.sha256(canonical_json(recipe).encode("utf-8")).hexdigest()


def short_key(full_key: str) -> str:
    """The form of a key used in paths (the first 12 hex digits)."""
    return full_key[:SHORT_KEY_LENGTH]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _payload_files(root: Path) -> Iterator[Path]:
    """Every file of an artifact directory except the manifest and staging/temporary files."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith(_STAGING_PREFIX) or path.name.startswith("."):
            continue
        if path.is_file() and rel.as_posix() != MANIFEST:
            yield path


def _digest_files(root: Path) -> dict[str, dict]:
    return {
        p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size}
        for p in _payload_files(root)
    }


class ArtifactWriter:
    """Stage an artifact's files, then publish them with a manifest written last.

    Usage::

        with ArtifactWriter(out_dir, recipe) as w:
            np.save(w.path("features.npy"), x)
            w.summary["count"] = len(x)

    Files are written under a sibling ``.staging-<name>-<id>/`` folder and moved into ``out_dir`` only when
    the block exits cleanly; an exception discards them. ``adopt`` names sub-folders that other
    jobs already wrote into ``out_dir`` (e.g. sampled ``shards``): they are kept and covered by
    the manifest. Anything else left in ``out_dir`` by an interrupted run is removed first.
    """

    def __init__(self, out_dir: str | os.PathLike, recipe: dict, adopt: Iterable[str] = ()):
        self.out_dir = Path(out_dir)
        self.recipe = recipe
        self.adopt = tuple(adopt)
        self.summary: dict[str, Any] = {}
        # A sibling at the same depth, so relative paths written while staging stay valid.
        self.staging = self.out_dir.parent / (
            f"{_STAGING_PREFIX}{self.out_dir.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )

    @property
    def dir(self) -> str:
        """The staging directory itself (for libraries that save a whole folder)."""
        return str(self.staging)

    def path(self, name: str) -> str:
        """Staging path for a file named ``name`` (relative, may contain sub-folders)."""
        target = (self.staging / name).resolve()
        if self.staging.resolve() not in target.parents:
            raise GenBenchError(f"artifact file name {name!r} escapes the artifact directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target)

    def __enter__(self) -> "ArtifactWriter":
        self._check_writable()
        self._clear_leftovers()
        self.staging.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _check_writable(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GenBenchError(f"cannot create artifact directory {self.out_dir}: {err}") from err
        if not os.access(self.out_dir, os.W_OK):
            raise GenBenchError(f"artifact directory {self.out_dir} is not writable")

    def _clear_leftovers(self) -> None:
        for child in self.out_dir.iterdir():
            if child.name in self.adopt:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def commit(self) -> None:
        """Move staged files into place, then write the manifest (last, atomically)."""
        for src in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            dest = self.out_dir / src.relative_to(self.staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        manifest = {
            "genbench_manifest": 1,
            "key": recipe_key(self.recipe),
            "recipe": self.recipe,
            "files": _digest_files(self.out_dir),
            "summary": self.summary,
            "genbench_version": __version__,
        }
        atomic_write_json(self.out_dir / MANIFEST, manifest)


def read_manifest(artifact_dir: str | os.PathLike) -> dict:
    """The parsed manifest of a finished artifact (clear error when absent or corrupt)."""
    path = Path(artifact_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenBenchError(f"{artifact_dir} is not a finished artifact (no {MANIFEST})") from None
    except json.JSONDecodeError as err:
        raise GenBenchError(f"{path} is not valid JSON: {err}") from None


@dataclass
class Problem:
    """One verification failure: which artifact, which file, what is wrong."""

    artifact: str
    key: str
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.artifact} [{self.key[:SHORT_KEY_LENGTH]}] {self.file}: {self.reason}"


def find_artifacts(root: str | os.PathLike) -> list[Path]:
    """Every artifact directory (one holding a MANIFEST.json) at or below ``root``."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(MANIFEST))


def verify_artifact(artifact_dir: str | os.PathLike) -> list[Problem]:
    """Recompute every digest of one artifact; return the problems found (empty if sound)."""
    root = Path(artifact_dir)
    manifest = read_manifest(root)
    key = manifest.get("key", "")
    problems = []
    if recipe_key(manifest.get("recipe", {})) != key:
        problems.append(Problem(str(root), key, MANIFEST, "recipe does not hash to its key"))
    if root.name != short_key(key):
        problems.append(Problem(str(root), key, MANIFEST, "directory name is not the key"))
    listed = manifest.get("files", {})
    for rel, expected in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(Problem(str(root), key, rel, "missing"))
        elif path.stat().st_size != expected["size"]:
            problems.append(Problem(str(root), key, rel, "size differs from the manifest"))
        elif file_sha256(path) != expected["sha256"]:
            problems.append(Problem(str(root), key, rel, "sha256 differs from the manifest"))
    for path in _payload_files(root):
        rel = path.relative_to(root).as_posix()
        if rel not in listed and not _inside_other_artifact(root, path):
            problems.append(Problem(str(root), key, rel, "not listed in the manifest"))
    return problems


def _inside_other_artifact(root: Path, path: Path) -> bool:
    for parent in path.parents:
        if parent == root:
            return False
        if (parent / MANIFEST).is_file():
            return True
    return False


def verify_tree(root: str | os.PathLike) -> tuple[int, list[Problem]]:
    """Verify every artifact below ``root``; returns (number checked, problems)."""
    artifacts = find_artifacts(root)
    problems = [p for artifact in artifacts for p in verify_artifact(artifact)]
    return len(artifacts), problems


def describe_artifact(artifact_dir: str | os.PathLike) -> dict:
    """A one-line summary of an artifact: stage, scope, key, main params, size."""
    root = Path(artifact_dir)
    manifest = read_manifest(root)
    recipe = manifest.get("recipe", {})
    files = manifest.get("files", {})
    return {
        "stage": recipe.get("stage", "?"),
        "scope": root.parent.name,
        "key": short_key(manifest.get("key", "")),
        "params": recipe.get("params", {}),
        "files": len(files),
        "bytes": sum(f["size"] for f in files.values()),
        "path": str(root),
    }
