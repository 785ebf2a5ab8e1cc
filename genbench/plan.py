"""The whole benchmark as a graph of content-addressed artifacts, derived from the config alone.

``build_plan(config)`` runs when the Snakefile is parsed. It reads no data files and globs
nothing: every artifact's recipe and key follows from the config, so a dry run shows every path
of the full benchmark in seconds. Rules look their recipe and upstream artifacts up here by
``(stage, scope, short key)``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

from genbench.artifacts import MANIFEST, make_recipe, recipe_key, short_key
from genbench.config import is_tiny
from genbench.datasets import DatasetInfo, get_dataset
from genbench.errors import ConfigError, GenBenchError

# Bump a stage's version when its code changes the bytes it writes: every artifact of that
# stage (and everything downstream) then gets a new key and is rebuilt beside the old one.
STAGE_VERSIONS = {
    "build_models": 1,
    "configure": 1,
    "prepare": 1,
    "fewshot": 1,
    "prompt_plan": 1,
    "sample_images": 1,
    "retrieve": 1,
    "textual_inversion_prepare": 1,
    "textual_inversion": 1,
    "features": 1,
    "text_classifier": 1,
    "pack_generated": 1,
    "pack_retrieval": 1,
    "pack_original": 1,
    "zeroshot_metric": 1,
    "distribution_metrics": 1,
    "proxy_distance": 1,
    "elevater": 1,
    "aggregate": 1,
}

GENERATED_STRATEGIES_NEEDING_TEXT2TEXT = {"model_enc"}
EVALUATION_STAGES = ("zeroshot_metric", "distribution_metrics", "proxy_distance", "elevater")


@dataclass(eq=False)
class Node:
    """One artifact of the plan: its recipe, its upstream artifacts and its path."""

    stage: str
    scope: str
    params: dict
    inputs: dict[str, "Node"]
    results_dir: str

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
    def dir(self) -> str:
        return f"{self.results_dir}/{self.stage}/{self.scope}/{self.short}"

    @property
    def manifest(self) -> str:
        return f"{self.dir}/{MANIFEST}"


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in, dictionaries recursively."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Plan:
    """Every artifact the config asks for, keyed by (stage, scope, short key)."""

    def __init__(self, config: dict):
        self.config = config
        self.results_dir = str(config.get("results_dir", "results")).rstrip("/")
        self.nodes: dict[tuple[str, str, str], Node] = {}
        self.evaluations: list[Node] = []
        self.sample_sets: list[Node] = []
        self.shards: dict[tuple[str, str], int] = {}
        self.datasets: dict[str, DatasetInfo] = {}
        self._build()

    # -- lookup -------------------------------------------------------------------------
    def add(self, stage: str, scope: str, params: dict, inputs: dict[str, Node]) -> Node:
        """Add an artifact (or return the identical one already planned)."""
        node = Node(stage, scope, params, dict(inputs), self.results_dir)
        existing = self.nodes.get((stage, scope, node.short))
        if existing is not None:
            if existing.key != node.key:
                raise GenBenchError(f"short-key collision in {stage}/{scope}: {node.short}")
            return existing
        self.nodes[(stage, scope, node.short)] = node
        return node

    def get(self, stage: str, scope: str, short: str) -> Node:
        """The planned artifact at ``<stage>/<scope>/<short>``; a clear error if not planned."""
        try:
            return self.nodes[(stage, scope, short)]
        except KeyError:
            raise GenBenchError(
                f"{self.results_dir}/{stage}/{scope}/{short} is not part of the current plan "
                "(its recipe differs from what the config asks for now)"
            ) from None

    def by_stage(self, stage: str) -> list[Node]:
        return [n for (s, _, _), n in self.nodes.items() if s == stage]

    def select(self, stages: Iterable[str] = (), datasets: Iterable[str] = ()) -> list[Node]:
        """Artifacts of the given stages and datasets (all, when a filter is empty)."""
        stages, datasets = set(stages), set(datasets)
        unknown = stages - set(STAGE_VERSIONS)
        if unknown:
            raise ConfigError(f"unknown stage(s) {sorted(unknown)}; valid: {sorted(STAGE_VERSIONS)}")
        return [
            n for n in self.nodes.values()
            if (not stages or n.stage in stages) and (not datasets or n.scope in datasets)
        ]

    def shard_paths(self, node: Node) -> list[str]:
        """The shard files a sample_images artifact gathers (each one Snakemake job)."""
        count = self.shards[(node.scope, node.short)]
        return [f"{node.dir}/shards/shard-{i:05d}.tar" for i in range(count)]

    def targets(self) -> list[str]:
        """What ``rule all`` asks for: the aggregate table (which needs everything else)."""
        return [n.manifest for n in self.by_stage("aggregate")]

    # -- construction -------------------------------------------------------------------
    def _section(self, dataset: str, name: str) -> Any:
        """A config section with the dataset's ``per_dataset`` overrides merged in."""
        base = self.config.get(name, {})
        override = self.config.get("per_dataset", {}).get(dataset, {}).get(name)
        if override is None:
            return copy.deepcopy(base)
        if isinstance(base, dict) and isinstance(override, dict):
            return deep_merge(base, override)
        return copy.deepcopy(override)

    def _model(self, role: str) -> tuple[dict, dict[str, Node]]:
        """(params, inputs) naming a model: a tiny model built by the plan, or a user's one."""
        spec = self.config.get("models", {}).get(role, {})
        if is_tiny(spec):
            node = self.add("build_models", role, {"kind": f"tiny_{role}", "seed": 0}, {})
            return {"tiny": True}, {role: node}
        return dict(spec), {}

    def _build(self) -> None:
        users = self.config.get("user_datasets", {})
        evaluations = []
        for name in self.config.get("datasets", []):
            info = get_dataset(name, users)
            self.datasets[name] = info
            evaluations += self._build_dataset(info)
        self.evaluations = evaluations
        inputs = {f"m{i:05d}": node for i, node in enumerate(evaluations)}
        if inputs:
            self.add("aggregate", "all", {}, inputs)

    def _build_dataset(self, info: DatasetInfo) -> list[Node]:
        d = info.name
        data = self._section(d, "data")
        configure = self.add("configure", d, {"dataset": info.to_json()}, {})
        prepare = self.add("prepare", d, {
            "source": info.to_json()["source"],
            "root": data.get("roots", {}).get(d) or _default_root(data, d),
            "download": bool(data.get("download", False)),
            "seed": data.get("seed", 0),
            "test_fraction": data.get("test_fraction", 0.3),
            "max_bad_fraction": data.get("max_bad_fraction", 0.01),
        }, {"configure": configure})
        enc_params, enc_inputs = self._model("encoder")
        text_cls = self.add("text_classifier", d, {"encoder": enc_params},
                            {"configure": configure, **enc_inputs})
        ctx = _DatasetContext(info, configure, prepare, text_cls, enc_params, enc_inputs)
        ctx.test_features = self._features(ctx, prepare, "test")
        ctx.train_features = self._features(ctx, prepare, "train")

        sources = self._section(d, "sources")
        fewshot = self._section(d, "fewshot")
        evaluations = []
        originals = {}
        if "original" in sources or "combined" in sources:
            for k in fewshot["shots"]:
                for seed in fewshot["seeds"]:
                    originals[(k, seed)] = self._original_pack(ctx, k, seed)
        if "original" in sources:
            for (k, seed), pack in originals.items():
                evaluations += self._evaluate(ctx, [(pack, ctx.train_features)],
                                              source="original", strategy="-", shots=k, seed=seed)
        if "generated" in sources or "combined" in sources:
            for strategy in self._section(d, "strategies"):
                for k in fewshot["shots"]:
                    pack, feats = self._generated_pack(ctx, strategy, k)
                    if "generated" in sources:
                        evaluations += self._evaluate(ctx, [(pack, feats)], source="generated",
                                                      strategy=strategy, shots=k, seed=0)
                    if "combined" in sources:
                        for seed in fewshot["seeds"]:
                            pairs = [(originals[(k, seed)], ctx.train_features), (pack, feats)]
                            evaluations += self._evaluate(ctx, pairs, source="combined",
                                                          strategy=strategy, shots=k, seed=seed,
                                                          probe_only=True)
        return evaluations

    def _features(self, ctx: "_DatasetContext", images: Node, split: str) -> Node:
        return self.add("features", ctx.info.name, {"split": split, "encoder": ctx.enc_params},
                        {"images": images, "configure": ctx.configure, **ctx.enc_inputs})

    def _original_pack(self, ctx: "_DatasetContext", k: int, seed: int) -> Node:
        subset = self.add("fewshot", ctx.info.name, {"k": k, "seed": seed},
                          {"prepare": ctx.prepare, "configure": ctx.configure})
        return self.add("pack_original", ctx.info.name, {"k": k, "seed": seed},
                        {"images": subset, "configure": ctx.configure})

    def _generated_pack(self, ctx: "_DatasetContext", strategy: str, k: int) -> tuple[Node, Node]:
        d = ctx.info.name
        gen = self._section(d, "generation")
        strategy_params = self._section(d, "strategy_params").get(strategy) or {}
        plan_inputs: dict[str, Node] = {"configure": ctx.configure}
        if strategy in GENERATED_STRATEGIES_NEEDING_TEXT2TEXT:
            t2t_params, t2t_inputs = self._model("text2text")
            strategy_params = {**strategy_params, "text2text": t2t_params}
            plan_inputs.update(t2t_inputs)
        prompt_plan = self.add("prompt_plan", d, {
            "strategy": strategy,
            "strategy_params": strategy_params,
            "images_per_class": gen["images_per_class"],
            "seed": gen["seed"],
        }, plan_inputs)
        samples = self._sample_images(ctx, prompt_plan, gen)
        feats = self._features(ctx, samples, "images")
        pack_cfg = self._section(d, "pack")
        pack = self.add("pack_generated", d, {
            "k": k, "selection": pack_cfg["selection"], "seed": gen["seed"],
        }, {"images": samples, "features": feats, "text_classifier": ctx.text_classifier,
            "configure": ctx.configure})
        return pack, feats

    def _sample_images(self, ctx: "_DatasetContext", prompt_plan: Node, gen: dict) -> Node:
        gen_params, gen_inputs = self._model("generator")
        total = ctx.info.num_classes * gen["images_per_class"]
        shards = math.ceil(total / gen["shard_size"])
        params = {
            "generator": gen_params,
            **{k: gen[k] for k in ("scheduler", "steps", "guidance", "height", "width",
                                   "output_size", "resize_filter", "dtype", "shard_size",
                                   "safety_checker", "device")},
            "num_images": total,
        }
        node = self.add("sample_images", ctx.info.name, params, {"plan": prompt_plan, **gen_inputs})
        self.shards[(node.scope, node.short)] = shards
        if node not in self.sample_sets:
            self.sample_sets.append(node)
        return node

    def _evaluate(self, ctx: "_DatasetContext", pairs: list[tuple[Node, Node]], *,
                  probe_only: bool = False, **labels) -> list[Node]:
        d = ctx.info.name
        external = {}
        for i, (pack, feats) in enumerate(pairs):
            external[f"pack{i}"] = pack
            external[f"features{i}"] = feats
        common = {**external, "test_features": ctx.test_features,
                  "text_classifier": ctx.text_classifier, "configure": ctx.configure}
        metrics = self._section(d, "metrics")
        probe = self._section(d, "probe")
        nodes = [self.add("elevater", d, {"probe": probe, "labels": labels}, common)]
        if probe_only:
            return nodes
        nodes.append(self.add("zeroshot_metric", d, {"cler": metrics["cler"], "labels": labels},
                              common))
        nodes.append(self.add("distribution_metrics", d, {
            "metrics": metrics["distribution"],
            "kid": metrics.get("kid", {}),
            "labels": labels,
        }, common))
        nodes.append(self.add("proxy_distance", d, {"pad": metrics.get("pad", {}),
                                                    "labels": labels}, common))
        return nodes


@dataclass
class _DatasetContext:
    info: DatasetInfo
    configure: Node
    prepare: Node
    text_classifier: Node
    enc_params: dict
    enc_inputs: dict
    test_features: Node | None = None
    train_features: Node | None = None


def _default_root(data: dict, dataset: str) -> str | None:
    root_dir = data.get("root_dir")
    return f"{root_dir}/{dataset}" if root_dir else None


def build_plan(config: dict) -> Plan:
    """The plan for a validated config."""
    return Plan(config)
