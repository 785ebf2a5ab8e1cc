"""Stage parameters: one frozen dataclass per stage, declared in the stage's own module.

A stage's dataclass is the one place that says which config keys the stage reads, which of
them change its bytes (keyed: they go into the artifact's recipe) and which do not (runtime:
batch sizes, worker counts, what to do on a shortfall). The plan builds it from the config
(``from_config``) and puts ``keyed()`` into the recipe and ``runtime()`` beside it; the job
rebuilds the same object from the two (``from_job``) and passes it whole to one package
function. A new parameter is then a schema entry, a field, and the line that uses it::

    @dataclass(frozen=True)
    class SamplingParams(StageParams):
        STAGE: ClassVar[str] = "sample_images"
        VERSION: ClassVar[int] = 2
        SECTION: ClassVar[str] = "generation"

        guidance: float = keyed()
        attention: str = keyed_if_changed("sdpa")
        batch_size: int = runtime(1)

Three kinds of field:

- ``keyed()``: always in the recipe (``keyed(key="k")`` stores it under another name, the one
  recipes written before this class existed use);
- ``keyed_if_changed(default)``: in the recipe only when it differs from its default, so that
  adding an option does not change the key of any artifact made without it;
- ``runtime()``: never in the recipe.

This module imports nothing outside the standard library and ``core.errors``: the plan loads
every stage's dataclass, and planning stays free of torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

from genbench.core.errors import ConfigError

KEYED = "keyed"
KEYED_IF_CHANGED = "keyed if changed"
RUNTIME = "runtime"


def keyed(
    default: Any = MISSING, *, key: str | None = None, factory: Any = MISSING, config: str | None = None, doc: str = ""
) -> Any:
    """A field that changes the artifact's bytes: always in the recipe (as ``key`` if given);
    ``factory`` makes a mutable default (``dict``, ``list``). ``config``: the dotted config key
    it comes from, when not ``<SECTION>.<name>`` (docs/CONFIG.md)."""
    meta = {"role": KEYED, "key": key, "config": config, "doc": doc}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


def keyed_if_changed(default: Any, *, config: str | None = None, doc: str = "") -> Any:
    """A keyed field that is left out of the recipe at its default (an option added later)."""
    meta = {"role": KEYED_IF_CHANGED, "key": None, "config": config, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def runtime(default: Any = MISSING, *, config: str | None = None, doc: str = "") -> Any:
    """A field the job needs that cannot change the bytes it writes: outside the recipe."""
    meta = {"role": RUNTIME, "key": None, "config": config, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class StageParams:
    """The parameters of one stage (subclass it as a frozen dataclass; see the module)."""

    STAGE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 0
    SECTION: ClassVar[str | None] = None  # the config section ``from_config`` reads

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        """field name -> the dotted config key it is read from: ``<SECTION>.<name>`` unless the
        field names another (``config="-"``: none, the plan sets it)."""
        keys = {f.name: f.metadata.get("config") or f"{cls.SECTION}.{f.name}" for f in cls.fields()}
        return {name: key for name, key in keys.items() if key != "-"}

    @classmethod
    def from_config(cls, section: dict, **values: Any):
        """The stage's params from its config section (per-dataset overrides already merged);
        ``values`` (what the plan decides, e.g. one K of ``fewshot.shots``) take precedence.
        A field the section lacks takes its default; a required one missing is a ConfigError
        naming ``<section>.<key>``."""
        unknown = set(values) - {f.name for f in cls.fields()}
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
        given = {}
        for f in cls.fields():
            if f.name in values:
                given[f.name] = values[f.name]
            elif f.name in section:
                given[f.name] = section[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{cls.SECTION or cls.STAGE}.{f.name}: missing (needed by the {cls.STAGE} stage)")
        return cls(**given)

    def keyed(self) -> dict:
        """The params that go into the recipe, under their recipe names."""
        out = {}
        for f in self.fields():
            value = getattr(self, f.name)
            role = f.metadata.get("role", KEYED)
            if role == KEYED or (role == KEYED_IF_CHANGED and value != f.default):
                out[f.metadata.get("key") or f.name] = value
        return out

    def runtime(self) -> dict:
        """The params the job needs beside its recipe (not hashed)."""
        return {f.name: getattr(self, f.name) for f in self.fields() if f.metadata.get("role") == RUNTIME}

    @classmethod
    def from_job(cls, params: dict, runtime: dict):
        """The same object in the job, from its recipe's params and its runtime params; a
        keyed-if-changed field absent from the recipe is at its default."""
        given = {}
        for f in cls.fields():
            role, name = f.metadata.get("role", KEYED), f.metadata.get("key") or f.name
            source = runtime if role == RUNTIME else params
            if name in source:
                given[f.name] = source[name]
        return cls(**given)


class SectionParams(StageParams, Mapping):
    """Stage params that are also read as a mapping (``params["steps"]``), for stages whose
    functions take their whole config section (the training stages; their tests pass plain
    dicts). Field names are the section's keys."""

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
