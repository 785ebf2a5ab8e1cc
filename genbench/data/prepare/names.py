"""Mapping a source's class names onto the registry's class order."""

from __future__ import annotations

import re

from genbench.core.errors import GenBenchError


def normalise_name(name: str) -> str:
    """Case-folded class name with ``_``, ``-`` and ``/`` read as spaces, spaces collapsed."""
    return " ".join(re.sub(r"[_\-/]+", " ", str(name)).casefold().split())


def class_name_lookup(info, aliases=None) -> dict:
    """Map names to registry class ids: exact class names, slugs, normalised forms, and
    ``aliases`` ({external name: registry class name})."""
    lookup = {}
    for class_id, name in enumerate(info.classes):
        lookup.setdefault(name, class_id)
        lookup.setdefault(normalise_name(name), class_id)
    for class_id, slug in enumerate(getattr(info, "slugs", None) or ()):
        lookup.setdefault(slug, class_id)
        lookup.setdefault(normalise_name(slug), class_id)
    for external, registry_name in (aliases or {}).items():
        if registry_name not in info.classes:
            raise GenBenchError(
                f"dataset {info.name}: class_aliases maps {external!r} to {registry_name!r}, "
                "which is not one of its classes"
            )
        lookup[external] = lookup[normalise_name(external)] = info.classes.index(registry_name)
    return lookup


def match_class(lookup: dict, name: str):
    """Registry class id for an external class name, or None."""
    if name in lookup:
        return lookup[name]
    return lookup.get(normalise_name(name))


def map_class_names(info, names, where: str, aliases=None) -> list[int]:
    """Registry ids for external class ``names`` (in their order); GenBenchError listing
    every unmatched or doubly-matched name, naming ``where``."""
    lookup = class_name_lookup(info, aliases)
    ids = [match_class(lookup, name) for name in names]
    unmatched = [name for name, class_id in zip(names, ids) if class_id is None]
    if unmatched:
        raise GenBenchError(
            f"dataset {info.name}: class name(s) in {where} match no registry class: "
            f"{unmatched}; registry classes: {list(info.classes)} "
            "(add class_aliases {external name: registry name} to the source config)"
        )
    seen = {}
    for name, class_id in zip(names, ids):
        if class_id in seen:
            raise GenBenchError(
                f"dataset {info.name}: {where} names {seen[class_id]!r} and {name!r} both map "
                f"to class {info.classes[class_id]!r}"
            )
        seen[class_id] = name
    return ids
