"""Content fingerprints of the things an artifact reads from outside the results folder.

A dataset root, a local model file or folder, a descriptions file and a retrieval pool enter
the recipe (and so the key) of the artifact that reads them by a fingerprint of their
content, never by their path alone:

    file:  sha256 of its bytes
    tree:  sha256 of the sorted lines "<relative path>\\0<size>\\0<sha256 of the file>\\n"
           over every file below the folder (names starting with "." are skipped)

Hashing a 150 GB folder on every parse would be ruinous, so, as DVC does, the digest of each
file is remembered in a stat cache keyed by (path, size, mtime_ns, ctime_ns, inode): an
unchanged tree costs a stat walk, and only new or changed files are read. ``ctime_ns`` is the
one a user cannot set back: a file overwritten in place with bytes of the same length, its
mtime restored with ``touch -r``, still has a new ctime and is read again. The same cache lets a job check the
files of its input artifacts without reading them again (see ``genbench.core.artifacts``).

Hub ids (``org/name``) are resolved to the revision of their local Hugging Face cache snapshot
(``refs/main``), without importing huggingface_hub or touching the network.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat as stat_module
from pathlib import Path

from genbench.core.errors import GenBenchError

CACHE_ENV = "GENBENCH_STAT_CACHE"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


_COLUMNS = ("path", "size", "mtime_ns", "ctime_ns", "ino", "sha256")


class StatCache:
    """sha256 of files, remembered by (absolute path, size, mtime_ns, ctime_ns, inode) in SQLite.

    A file whose size, mtime_ns, ctime_ns and inode all match its last recorded digest is not
    read again. Any change of the four (an edit, a copy, ``touch``, ``chmod``, an in-place
    overwrite whose mtime was set back) makes it be re-hashed: a re-hash, never a rerun, as the
    digest decides. ``path=None`` keeps the cache in memory only. A cache file of an older
    format is replaced by an empty one, with a message (each file is then read once more).
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else Path(path)
        self._conn: sqlite3.Connection | None = None
        self.hashed_bytes = 0  # bytes actually read by this process (for tests and benchmarks)
        self.hashed_files = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            target = ":memory:"
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                target = str(self.path)
            try:
                self._conn = sqlite3.connect(target, timeout=120, isolation_level=None)
                # a cache: an entry lost in a crash only costs a re-hash, so no fsync per commit
                self._conn.execute("PRAGMA synchronous=OFF")
                self._create_table(target)
            except sqlite3.Error as err:
                raise GenBenchError(
                    f"stat cache {target}: {err} (delete that file to start a new cache, or set {CACHE_ENV} "
                    "to another file)"
                ) from None
        return self._conn

    def _create_table(self, target: str) -> None:
        """The ``files`` table, replacing one of an older layout (it is only a cache)."""
        columns = tuple(row[1] for row in self._conn.execute("PRAGMA table_info(files)"))
        if columns and columns != _COLUMNS:
            self._conn.execute("DROP TABLE files")
            print(f"GenBench: stat cache {target} had an older layout; started a new one (files are hashed once more)")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, sha256 TEXT)"
        )

    def entries_below(self, root: Path) -> dict[str, tuple[int, int, int, int, str]]:
        """Every cached entry whose path lies below ``root``: path -> (size, mtime_ns, ctime_ns,
        ino, sha)."""
        prefix = str(root).rstrip("/") + "/"
        rows = self._db().execute(
            "SELECT path, size, mtime_ns, ctime_ns, ino, sha256 FROM files WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + "0"),  # "0" sorts right after "/"
        )
        return {p: (s, m, c, i, h) for p, s, m, c, i, h in rows}

    def lookup(self, path: str | os.PathLike, st: os.stat_result | None = None) -> str | None:
        """The remembered digest of ``path`` if its stat still matches, else None."""
        path = os.path.abspath(path)
        st = st or os.stat(path)
        row = (
            self._db()
            .execute("SELECT size, mtime_ns, ctime_ns, ino, sha256 FROM files WHERE path = ?", (path,))
            .fetchone()
        )
        if row and tuple(row[:4]) == _stat_tuple(st):
            return row[4]
        return None

    def remember(self, path: str | os.PathLike, sha256: str, st: os.stat_result | None = None) -> None:
        """Record that ``path``, as it stands now, has digest ``sha256``."""
        self.remember_many([(os.path.abspath(path), st or os.stat(path), sha256)])

    def remember_many(self, items: list[tuple[str, os.stat_result, str]]) -> None:
        if not items:
            return
        rows = [(p, *_stat_tuple(st), sha) for p, st, sha in items]
        db = self._db()
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")

    def digest(self, path: str | os.PathLike) -> str:
        """sha256 of ``path``: from the cache when its stat matches, else read and remembered."""
        path = os.path.abspath(path)
        st = os.stat(path)
        known = self.lookup(path, st)
        if known is not None:
            return known
        sha = self._hash(path, st)
        self.remember(path, sha, st)
        return sha

    def _hash(self, path: str, st: os.stat_result) -> str:
        self.hashed_files += 1
        self.hashed_bytes += st.st_size
        return sha256_file(path)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_CACHES: dict[str, StatCache] = {}


def stat_cache_for(results_dir: str | os.PathLike) -> StatCache:
    """The stat cache of a results folder (``<results>/.genbench/stat-cache.sqlite``, or the file
    named by ``$GENBENCH_STAT_CACHE``), one object per process."""
    path = os.environ.get(CACHE_ENV) or os.path.join(os.path.abspath(results_dir), ".genbench", "stat-cache.sqlite")
    if path not in _CACHES:
        _CACHES[path] = StatCache(path)
    return _CACHES[path]


def _walk_files(root: Path):
    """(relative posix path, absolute path, stat) of every non-hidden file below ``root``, sorted."""
    stack = [root]
    found = []
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            raise GenBenchError(f"cannot read folder {folder}: {err.strerror}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            st = entry.stat()  # follows symlinks: a linked file counts by its content
            if stat_module.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif stat_module.S_ISREG(st.st_mode):
                found.append((Path(entry.path).relative_to(root).as_posix(), entry.path, st))
    return sorted(found)


def tree_digest(root: str | os.PathLike, cache: StatCache) -> dict:
    """Fingerprint of a folder: ``{"kind": "tree", "sha256", "files", "bytes"}`` (see module doc)."""
    root = Path(os.path.abspath(root))
    known = cache.entries_below(root)
    lines, fresh, total = [], [], 0
    for rel, path, st in _walk_files(root):
        entry = known.get(path)
        if entry and entry[:4] == _stat_tuple(st):
            sha = entry[4]
        else:
            sha = cache._hash(path, st)
            fresh.append((path, st, sha))
        lines.append(f"{rel}\0{st.st_size}\0{sha}\n")
        total += st.st_size
    cache.remember_many(fresh)
    digest = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    return {"kind": "tree", "sha256": digest, "files": len(lines), "bytes": total}


def fingerprint_path(path: str | os.PathLike, cache: StatCache) -> dict:
    """Fingerprint of a file or folder; ``{"kind": "absent"}`` when nothing is there (a dry run
    on a machine without the data still plans; the job that reads it then fails clearly)."""
    path = Path(path).expanduser()
    if path.is_file():
        st = path.stat()
        return {"kind": "file", "sha256": cache.digest(path), "bytes": st.st_size}
    if path.is_dir():
        return tree_digest(path, cache)
    return {"kind": "absent"}


def content_key(fingerprint: dict) -> dict:
    """The part of a fingerprint that identifies content (what goes into a recipe)."""
    return {k: fingerprint[k] for k in ("kind", "sha256") if k in fingerprint}


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repositories (same rules as the library)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_revision(repo_id: str, revision: str = "main") -> str | None:
    """The commit hash a hub id resolves to in the local cache, or None when it is not cached."""
    ref = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
