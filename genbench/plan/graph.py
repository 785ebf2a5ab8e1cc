"""The plan as a graph: artifact nodes (recipe, key, path) and their registry.

A ``Node`` is one artifact: its stage, scope (dataset, or model role), keyed params, upstream
nodes and runtime params. Its key is the hash of its recipe (``genbench.core.artifacts``), its
folder follows ``genbench.core.paths``. A ``Graph`` holds every node once, by (stage, scope,
short key), and answers the rules' look-ups by folder name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from genbench.core import paths
from genbench.core.artifacts import make_recipe, recipe_key, short_key
from genbench.core.errors import ConfigError, GenBenchError
from genbench.plan.stages import STAGE_VERSIONS

# Stages whose artifact is gathered from parts that jobs of their own write (one per shard or
# class): the path of part i.
PART_PATHS = {"sample_images": paths.shard_path, "textual_inversion": paths.token_path, "lora": paths.adapter_path}


@dataclass(eq=False)
class Node:
    """One artifact of the plan: its recipe, its upstream artifacts and its path.

    ``params`` are keyed (they change the artifact's bytes). ``runtime`` holds what the job
    needs but what cannot change its bytes (paths of fingerprinted inputs, batch sizes,
    worker counts); it reaches the job beside the recipe and is not hashed. ``label`` is the
    readable part of the folder name (from keyed params only); ``parts`` the number of part
    jobs (shards, classes) for the stages of ``PART_PATHS``.
    """

    stage: str
    scope: str
    params: dict
    inputs: dict[str, "Node"]
    results_dir: str
    runtime: dict = field(default_factory=dict)
    label: str = ""
    parts: int = 0

    @cached_property
    def recipe(self) -> dict:
        upstream = {name: node.key for name, node in self.inputs.items()}
        return make_recipe(self.stage, STAGE_VERSIONS[self.stage], self.params, upstream)

    @cached_property
    def key(self) -> str:
        return recipe_key(self.recipe)

    @property
    def short(self) -> str:
        return short_key(self.key)

    @property
    def folder(self) -> str:
        return paths.folder_name(self.label, self.short)

    @property
    def dir(self) -> str:
        return paths.artifact_dir(self.results_dir, self.stage, self.scope, self.folder)

    @property
    def manifest(self) -> str:
        return paths.manifest_path(self.results_dir, self.stage, self.scope, self.folder)

    def part_paths(self) -> list[str]:
        """The files the part jobs of this artifact write (shards, class tokens)."""
        return [PART_PATHS[self.stage](self.dir, i) for i in range(self.parts)]


class Graph:
    """Every planned artifact once, by (stage, scope, short key)."""

    def __init__(self, results_dir: str):
        self.results_dir = results_dir
        self.nodes: dict[tuple[str, str, str], Node] = {}
        self.generator_nodes: dict[str, list[Node]] = {}  # name in ``generators`` -> its sets' artifacts

    def add(
        self,
        stage: str,
        scope: str,
        params: dict,
        inputs: dict[str, Node],
        runtime: dict | None = None,
        label: str = "",
        parts: int = 0,
    ) -> Node:
        """Add an artifact (or return the identical one already planned)."""
        node = Node(stage, scope, params, dict(inputs), self.results_dir, dict(runtime or {}), label, parts)
        existing = self.nodes.get((stage, scope, node.short))
        if existing is not None:
            if existing.key != node.key:
                raise GenBenchError(f"short-key collision in {stage}/{scope}: {node.short}")
            return existing
        self.nodes[(stage, scope, node.short)] = node
        return node

    def add_stage(
        self,
        params,
        scope: str,
        inputs: dict[str, Node],
        wiring: dict | None = None,
        runtime: dict | None = None,
        label: str = "",
        parts: int = 0,
    ) -> Node:
        """Add the artifact of a stage's params dataclass (``genbench.core.stage``): its keyed
        params, with ``wiring`` (what the plan adds: model identities, counts, labels) beside
        them in the recipe; its runtime params, with ``runtime`` (paths) beside them."""
        keyed = {**(wiring or {}), **params.keyed()}
        return self.add(params.STAGE, scope, keyed, inputs, {**params.runtime(), **(runtime or {})}, label, parts)

    def get(self, stage: str, scope: str, folder: str) -> Node:
        """The planned artifact in folder ``<stage>/<scope>/<folder>``; a clear error if none."""
        node = self.nodes.get((stage, scope, paths.short_key_of(folder)))
        if node is None or node.folder != folder:
            raise GenBenchError(
                f"{self.results_dir}/{stage}/{scope}/{folder} is not part of the current plan "
                "(its recipe differs from what the config asks for now)"
            )
        return node

    def by_stage(self, stage: str) -> list[Node]:
        return [n for (s, _, _), n in self.nodes.items() if s == stage]

    def select(
        self, stages: Iterable[str] = (), datasets: Iterable[str] = (), generators: Iterable[str] = ()
    ) -> list[Node]:
        """Artifacts of the given stages, datasets and generators (all, when a filter is empty;
        a generator's artifacts are those its sets were made and evaluated with)."""
        stages, datasets, generators = set(stages), set(datasets), set(generators)
        unknown = stages - set(STAGE_VERSIONS)
        if unknown:
            raise ConfigError(f"unknown stage(s) {sorted(unknown)}; valid: {sorted(STAGE_VERSIONS)}")
        named = self.generator_nodes
        if generators - set(named):
            raise ConfigError(f"unknown generator(s) {sorted(generators - set(named))}; valid: {sorted(named)}")
        of_generators = {id(n) for g in generators for n in named[g]}
        return [
            n
            for n in self.nodes.values()
            if (not stages or n.stage in stages)
            and (not datasets or n.scope in datasets)
            and (not generators or id(n) in of_generators)
        ]

    def aggregate_manifests(self) -> list[str]:
        """The manifests of the aggregate tables (which need every evaluation)."""
        return [n.manifest for n in self.by_stage("aggregate")]

    def missing_manifests(self) -> list[str]:
        """The manifest of every planned artifact that is not finished (targets of ``rule all``)."""
        return [n.manifest for n in self.nodes.values() if not os.path.exists(n.manifest)]
