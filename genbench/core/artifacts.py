"""Content-addressed artifacts: one key function, manifests, atomic writes and verification.

An artifact is a directory ``<results>/<stage>/<scope>/<short key>/`` (scope is the dataset,
or a role such as ``encoder`` for models). Its key is

    key = sha256(canonical_json({"stage", "version", "params", "inputs"}))

where ``inputs`` maps each upstream artifact's role name to that artifact's full key. Identical
recipes therefore share one directory, and any change of a param, of the stage version or of
an upstream key gives a new directory beside the old one.

A finished artifact holds ``MANIFEST.json`` (the recipe, the sha256 and size of every file, the
package version), written last and atomically: a directory without a manifest is unfinished.

Nothing reads an artifact without checking it: ``check_artifact`` compares the manifest with the
key the reader expects and every file with its listed digest, through the stat cache of
``genbench.core.fingerprint`` (a file whose size, mtime_ns and inode match its last verified digest is
not read again). ``verify_artifact`` re-reads everything, for ``genbench verify``.

Files are staged in ``.staging-<key>-<host>-<pid>-<random>/`` beside the artifact; the staging
folders of jobs that died are found by ``stale_staging`` and removed by ``remove_stale_staging``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from genbench import __version__
from genbench.core.errors import GenBenchError
from genbench.core.fingerprint import StatCache, sha256_file
from genbench.core.io import job_tag

MANIFEST = "MANIFEST.json"
SHORT_KEY_LENGTH = 12
STAGING_PREFIX = ".staging-"
_STAGING_PREFIX = STAGING_PREFIX


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


def named_by_key(folder: str, full_key: str) -> bool:
    """An artifact folder is ``<short key>`` or ``<label>-<short key>`` (genbench.core.paths)."""
    short = short_key(full_key)
    return folder == short or folder.endswith("-" + short)


file_sha256 = sha256_file  # one implementation (genbench.core.fingerprint)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{job_tag()}")
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


class ArtifactWriter:
    """Stage an artifact's files, then publish them with a manifest written last.

    Usage::

        with ArtifactWriter(out_dir, recipe) as w:
            np.save(w.path("features.npy"), x)
            w.summary["count"] = len(x)

    Files are written under a sibling ``.staging-<name>-<id>/`` folder and moved into ``out_dir`` only when
    the block exits cleanly; an exception discards them. ``adopt`` names sub-folders that other
    jobs already wrote into ``out_dir`` (e.g. sampled ``shards``): they are kept, and each of
    their files enters the manifest only through ``adopt_file`` with a digest the caller has
    checked against that job's own small manifest; an unvouched file there is an error. Anything
    else left in ``out_dir`` by an interrupted run is removed first. Digests of the staged files
    are computed while they are moved into place and remembered in ``cache``.
    """

    def __init__(
        self, out_dir: str | os.PathLike, recipe: dict, adopt: Iterable[str] = (), cache: StatCache | None = None
    ):
        self.out_dir = Path(out_dir)
        self.recipe = recipe
        self.adopt = tuple(adopt)
        self.cache = cache
        self.summary: dict[str, Any] = {}
        self.adopted: dict[str, dict] = {}
        # A sibling at the same depth, so relative paths written while staging stay valid.
        self.staging = self.out_dir.parent / f"{_STAGING_PREFIX}{self.out_dir.name}-{job_tag()}"

    def adopt_file(self, rel: str, sha256: str, size: int) -> None:
        """Enter a file another job wrote into an adopted folder, with its checked digest."""
        self.adopted[rel] = {"sha256": sha256, "size": int(size)}

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
        try:
            if exc_type is None:
                self.commit()
        except OSError as err:
            exc = err
            raise
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise GenBenchError(
                    f"no space left for artifact {self.out_dir} (disk or quota full while writing it; nothing "
                    f"of it was kept): free space on the file system of {self.out_dir.parent} and run again"
                ) from None

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

    def _check_adopted(self) -> None:
        for folder in self.adopt:
            for path in sorted((self.out_dir / folder).rglob("*")):
                rel = path.relative_to(self.out_dir).as_posix()
                if path.is_file() and not path.name.startswith(".") and rel not in self.adopted:
                    raise GenBenchError(
                        f"{self.out_dir}: {rel} was not written by this artifact's jobs "
                        "(no job manifest vouches for it); move it away and rerun"
                    )

    def commit(self) -> None:
        """Move staged files into place, then write the manifest (last, atomically)."""
        self._check_adopted()
        files = dict(self.adopted)
        remembered = []
        for src in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            rel = src.relative_to(self.staging).as_posix()
            sha = file_sha256(src)
            dest = self.out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            st = dest.stat()
            files[rel] = {"sha256": sha, "size": st.st_size}
            remembered.append((str(dest.resolve()), st, sha))
        manifest = {
            "genbench_manifest": 1,
            "key": recipe_key(self.recipe),
            "recipe": self.recipe,
            "files": dict(sorted(files.items())),
            "summary": self.summary,
            "genbench_version": __version__,
        }
        atomic_write_json(self.out_dir / MANIFEST, manifest)
        if self.cache is not None:
            self.cache.remember_many(remembered)


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


def _manifest_problems(root: Path) -> tuple[dict | None, list[Problem]]:
    """The manifest of ``root`` and what is wrong with it as a document (not its files)."""
    try:
        manifest = read_manifest(root)
    except GenBenchError as err:
        return None, [Problem(str(root), "", MANIFEST, f"unreadable: {err}")]
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None, [Problem(str(root), "", MANIFEST, "not a GenBench manifest (no 'files' mapping)")]
    key = str(manifest.get("key", ""))
    problems = []
    try:
        recipe_matches = recipe_key(manifest.get("recipe", {})) == key
    except GenBenchError:
        recipe_matches = False
    if not recipe_matches:
        problems.append(Problem(str(root), key, MANIFEST, "recipe does not hash to its key (edited by hand?)"))
    if not named_by_key(root.name, key):
        problems.append(Problem(str(root), key, MANIFEST, "directory name does not end with the key"))
    return manifest, problems


def _file_problem(
    root: Path, key: str, rel: str, expected, cache: StatCache | None, verified: list | None = None
) -> Problem | None:
    """What is wrong with one listed file (None if sound). A file read and found sound is
    appended to ``verified`` as (path, stat, sha256), for the caller to remember at once."""
    path = root / rel
    if not isinstance(expected, dict) or "sha256" not in expected or "size" not in expected:
        return Problem(str(root), key, rel, "manifest entry has no sha256/size")
    if not path.is_file():
        return Problem(str(root), key, rel, "missing")
    st = path.stat()
    if st.st_size != expected["size"]:
        return Problem(str(root), key, rel, "size differs from the manifest")
    if cache is not None and cache.lookup(path, st) == expected["sha256"]:
        return None  # verified before, unchanged since (same size, mtime_ns and inode)
    sha = file_sha256(path)
    if sha != expected["sha256"]:
        return Problem(str(root), key, rel, "sha256 differs from the manifest")
    if cache is not None:
        if verified is None:
            cache.remember(path.resolve(), sha, st)
        else:
            verified.append((str(path.resolve()), st, sha))
    return None


def verify_artifact(artifact_dir: str | os.PathLike, cache: StatCache | None = None) -> list[Problem]:
    """Check one artifact: its manifest, every listed file's size and sha256, and no unlisted
    file. Without ``cache`` every file is read again; with it, unchanged files are not."""
    root = Path(artifact_dir)
    manifest, problems = _manifest_problems(root)
    if manifest is None:
        return problems
    key = str(manifest.get("key", ""))
    listed = manifest["files"]
    verified: list = []
    for rel, expected in sorted(listed.items()):
        problem = _file_problem(root, key, rel, expected, cache, verified)
        if problem is not None:
            problems.append(problem)
    if cache is not None:
        cache.remember_many(verified)
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
    """Verify every artifact below ``root``, re-reading every file; returns (number checked,
    problems). An unreadable manifest is a problem like any other: checking goes on. For a
    results folder (artifacts at ``<root>/<stage>/<scope>/<folder>``), an upstream key that a
    manifest's recipe names and that no artifact there has is a problem too."""
    artifacts = find_artifacts(root)
    problems = [p for artifact in artifacts for p in verify_artifact(artifact)]
    return len(artifacts), problems + missing_upstream(Path(root), artifacts)


def missing_upstream(results: Path, artifacts: list[Path]) -> list[Problem]:
    """The recipe inputs of the artifacts of the results folder ``results`` that have no
    artifact there: a deleted or moved upstream folder that its finished dependants name."""
    mine = [a for a in artifacts if len(a.relative_to(results).parts) == 3]
    manifests = {}
    for artifact in mine:
        try:
            manifests[artifact] = read_manifest(artifact)
        except GenBenchError:
            continue  # reported by verify_artifact
    present = {str(m.get("key")) for m in manifests.values() if isinstance(m, dict)}
    problems = []
    for artifact, manifest in manifests.items():
        recipe = manifest.get("recipe") if isinstance(manifest, dict) else None
        inputs = recipe.get("inputs", {}) if isinstance(recipe, dict) else {}
        for name, key in sorted(inputs.items()) if isinstance(inputs, dict) else ():
            if key and str(key) not in present:
                reason = f"upstream '{name}' [{short_key(str(key))}] has no artifact under {results}"
                problems.append(Problem(str(artifact), str(manifest.get("key", "")), MANIFEST, reason))
    return problems


def check_artifact(
    artifact_dir: str | os.PathLike, expected_key: str | None = None, cache: StatCache | None = None
) -> dict:
    """The manifest of an artifact a job is about to read, after checking it; a GenBenchError
    naming every bad file and the key otherwise (never a silent rebuild).

    ``expected_key``: the full key the reader's recipe names for it.
    """
    root = Path(artifact_dir)
    if not (root / MANIFEST).is_file():
        raise GenBenchError(f"{root} is not a finished artifact (no {MANIFEST})")
    problems = verify_artifact(root, cache)
    try:
        manifest = read_manifest(root)
    except GenBenchError:
        manifest = {}  # already among the problems
    if expected_key and isinstance(manifest, dict) and manifest.get("key", expected_key) != expected_key:
        problems.append(
            Problem(
                str(root),
                str(manifest.get("key")),
                MANIFEST,
                f"key differs from the {short_key(expected_key)} this job's recipe names",
            )
        )
    if problems:
        listing = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise GenBenchError(
            f"input artifact {root} does not verify:\n{listing}{more}\n"
            f"It was changed after it was written. Restore it, or delete {root} to rebuild it."
        )
    return manifest


# ------------------------------------------------------------------ staging leftovers

_TAG = r"(?:(?P<host>.+)-)?(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})"
_STAGING_RE = re.compile(rf"^{re.escape(_STAGING_PREFIX)}(?P<name>.*?[0-9a-f]{{{SHORT_KEY_LENGTH}}})-{_TAG}$")
_TMP_RE = re.compile(rf"^\..+\.tmp-{_TAG}$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_leftovers(root: str | os.PathLike) -> list[tuple[Path, bool]]:
    """Staging folders and temporary files below ``root``, each with whether the job that made
    it is known to be dead (same host, no such process). Another host's are never presumed dead."""
    found = []
    host = socket.gethostname()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames) + list(filenames):
            match = _STAGING_RE.match(name) or _TMP_RE.match(name)
            if not match:
                continue
            same_host = match.group("host") in (None, host)
            found.append((Path(dirpath) / name, same_host and not pid_alive(int(match.group("pid")))))
        dirnames[:] = [d for d in dirnames if not _STAGING_RE.match(d)]
    return sorted(found)


def remove_stale_staging(root: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove the staging folders and temporary files of dead jobs; return (path, bytes freed)."""
    removed = []
    for path, dead in staging_leftovers(root):
        if not dead:
            continue
        size = _tree_size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append((path, size))
    return removed


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


# ------------------------------------------------------------------ part manifests


def part_manifest_path(data_path: str | os.PathLike) -> Path:
    """``shards/shard-00000.tar`` -> ``shards/shard-00000.json``: the part's own small manifest."""
    return Path(data_path).with_suffix(".json")


def write_part_manifest(data_path: str | os.PathLike, key: str, cache: StatCache | None = None) -> dict:
    """After a job wrote one part (a shard, a class token) of an artifact: record its digest
    and the artifact's key beside it, so the gathering job can accept it without trusting
    whatever is on disk then."""
    data_path = Path(data_path)
    st = data_path.stat()
    sha = file_sha256(data_path)
    entry = {"genbench_part": 1, "key": key, "file": data_path.name, "sha256": sha, "size": st.st_size}
    atomic_write_json(part_manifest_path(data_path), entry)
    if cache is not None:
        cache.remember(data_path.resolve(), sha, st)
    return entry


def adopt_parts(
    writer: ArtifactWriter, data_paths: Iterable[str | os.PathLike], key: str, cache: StatCache | None = None
) -> None:
    """Enter every part into ``writer``'s manifest with the digest its part manifest records,
    after checking the file still has it (through the stat cache). A part without a part
    manifest, written for another key, or changed since, is an error naming it."""
    bad = []
    for data_path in map(Path, data_paths):
        rel = data_path.relative_to(writer.out_dir).as_posix()
        side = part_manifest_path(data_path)
        try:
            entry = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            bad.append(f"{rel}: its part manifest {side.name} is missing or unreadable ({err})")
            continue
        if entry.get("key") != key or entry.get("file") != data_path.name:
            bad.append(f"{rel}: its part manifest names another artifact or file")
            continue
        problem = _file_problem(writer.out_dir, short_key(key), rel, entry, cache)
        if problem is not None:
            reason = problem.reason.replace("the manifest", side.name)
            bad.append(f"{rel}: {reason} (changed after its job wrote it)")
            continue
        writer.adopt_file(rel, entry["sha256"], entry["size"])
        side_rel = side.relative_to(writer.out_dir).as_posix()
        writer.adopt_file(side_rel, file_sha256(side), side.stat().st_size)
    if bad:
        listing = "\n".join(f"  {line}" for line in bad[:20])
        raise GenBenchError(
            f"{writer.out_dir} [{short_key(key)}]: parts that cannot be accepted:\n{listing}\n"
            "Delete those files (and their .json) to have them made again."
        )
