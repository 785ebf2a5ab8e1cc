"""The whole benchmark as a graph of content-addressed artifacts, derived from the config alone.

``build_plan(config)`` runs when the Snakefile is parsed. It globs nothing in the results:
every artifact's recipe and key follows from the config and the fingerprints of the inputs it
reads (``genbench.core.fingerprint``), so a dry run shows every path of the full benchmark in
seconds. Rules look their recipe and upstream artifacts up by ``(stage, scope, folder)``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench.core import paths
from genbench.core.config import (
    deep_merge,
    generator_specs,
    is_tiny,
    is_trained,
    looks_like_local_path,
    open_clip_quick_gelu,
)
from genbench.core.errors import ConfigError
from genbench.core.fingerprint import content_key, fingerprint_path, hub_revision, stat_cache_for
from genbench.core.protocol import PAPER_CLIP_PROMPT, pack_settings
from genbench.data.datasets import ConfigureParams, DatasetInfo, get_dataset
from genbench.data.fewshot import FewShotParams
from genbench.data.prepare import PrepareParams
from genbench.evaluation.evaluate import CLERParams, DistributionParams, PADParams, ProbeParams
from genbench.evaluation.external import GeneratedPackParams, OriginalPackParams, RetrievedPackParams
from genbench.evaluation.features import FeaturesParams, TextClassifierParams
from genbench.generation.prompts import (
    IMG2IMG_STRATEGIES,
    LORA_STRATEGIES,
    STRATEGIES_NEEDING_TEXT2TEXT,
    TEXTUAL_INVERSION_STRATEGIES,
    PromptPlanParams,
    base_strategy,
)
from genbench.generation.sampling import SamplingParams
from genbench.injection.lora import LoraParams
from genbench.injection.references import ReferenceParams
from genbench.injection.textual_inversion import TextualInversionParams
from genbench.models.tiny import TinyModelParams
from genbench.plan.graph import STAGE_VERSIONS, Graph, Node  # noqa: F401 (STAGE_VERSIONS: re-exported)
from genbench.report.tables import AggregateParams
from genbench.retrieval.build import PoolParams
from genbench.retrieval.search import RetrievalParams

REPO_ROOT = Path(__file__).resolve().parents[2]
MIN_SET_ROWS = 6  # PRDC's k + 1 (k = 5) and the proxy-A distance's smallest set
_SET_KINDS = {"sample_images": "generated", "retrieve": "retrieved"}  # folder labels of image sets


class Plan(Graph):
    """Every artifact the config asks for: the graph, built stage by stage from the config."""

    def __init__(self, config: dict, stat_cache=None, known_fingerprints: dict | None = None):
        super().__init__(str(config.get("results_dir", "results")).rstrip("/"))
        self.config = config
        self.stat_cache = stat_cache or stat_cache_for(self.results_dir)
        # absolute path -> fingerprint. A job process of a run starts from its main process's,
        # so a cluster job does not walk a 1.28 M-file data folder again just to find its key.
        self.fingerprints: dict[str, dict] = dict(known_fingerprints or {})
        self.evaluations: list[Node] = []
        self.sample_sets: list[Node] = []
        self.datasets: dict[str, DatasetInfo] = {}
        self._build()

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

    def fingerprint(self, path: str | Path) -> dict:
        """The content fingerprint of a file or folder outside the results (memoised per plan)."""
        real = os.path.abspath(os.path.expanduser(str(path)))
        if real not in self.fingerprints:
            self.fingerprints[real] = fingerprint_path(real, self.stat_cache)
        return self.fingerprints[real]

    def model_identity(self, spec: dict) -> dict:
        """The keyed form of a model spec: every local path replaced by the fingerprint of its
        content, and a hub id pinned to the revision of its local cache snapshot."""
        keyed = {}
        for name, value in spec.items():
            if isinstance(value, str) and looks_like_local_path(value):
                keyed[name] = content_key(self.fingerprint(value))
            else:
                keyed[name] = value
        model = spec.get("model")
        if isinstance(model, str) and _is_hub_id(model) and not looks_like_local_path(model):
            keyed["revision"] = hub_revision(model)
        if spec.get("type") == "open_clip" and open_clip_quick_gelu(spec):
            keyed["quick_gelu"] = True  # the activation the towers are built with
        return keyed

    def _model(self, role: str, spec: dict | None = None) -> tuple[dict, dict[str, Node], dict]:
        """(keyed params, upstream inputs, runtime spec) of a model: a tiny model built by the
        plan, or a user's one (keyed by content, loaded from the spec as given)."""
        if spec is None:
            spec = self.config.get("models", {}).get(role, {})
        if is_tiny(spec):
            seed, pipeline = int(spec.get("seed", 0)), spec.get("pipeline", "sd")
            params = TinyModelParams(kind=f"tiny_{role}", seed=seed, pipeline=pipeline)
            node = self.add_stage(params, role, {}, label="tiny" if pipeline == "sd" else f"tiny-{pipeline}")
            keyed = {
                "tiny": True,
                **({"seed": seed} if seed else {}),
                **({"pipeline": pipeline} if pipeline != "sd" else {}),
            }
            return keyed, {role: node}, {"built": True}
        if is_trained(spec):
            node = self._trained_model(role)
            return {"trained": node.key}, {role: node}, {"built": True}
        return self.model_identity(spec), {}, dict(spec)

    def _trained_model(self, role: str) -> Node:
        """The model of ``role`` that the workflow trains on its corpus ({model: trained})."""
        builders = {
            "encoder": self._trained_encoder,
            "generator": self._trained_generator,
            "text2text": self._trained_text2text,
        }
        if role not in builders:
            raise ConfigError(f"{{model: trained}} is for models.encoder, generator and text2text, not {role}")
        return builders[role]()

    def _trained_encoder(self) -> Node:
        """The CLIP trained on the corpus: the feature encoder, and the generator's text tower."""
        from genbench.data.corpus import encoder_model_config

        corpus = self._corpus()
        params = self._training("encoder")
        encoder_model_config(params, int(corpus.params["image_size"]))  # a mismatch stops the plan
        return self.add_stage(params, "encoder", {"corpus": corpus}, label="clip")

    def _trained_vae(self) -> Node:
        from genbench.models.train_vae import check_vae_config

        corpus = self._corpus()
        params = self._training("vae")
        check_vae_config(params, int(corpus.params["image_size"]))
        return self.add_stage(params, "generator", {"corpus": corpus}, label="vae")

    def _trained_generator(self) -> Node:
        """A small Stable Diffusion: the UNet trained on the corpus captions, with the VAE of
        train_vae and the text tower of the corpus CLIP."""
        from genbench.models.train_generator import check_generator_config

        params = self._training("generator")
        check_generator_config(params)
        inputs = {"corpus": self._corpus(), "vae": self._trained_vae(), "encoder": self._trained_encoder()}
        return self.add_stage(params, "generator", inputs, label="ldm")

    def _trained_text2text(self) -> Node:
        params = self._training("text2text")
        return self.add_stage(params, "text2text", {"corpus": self._corpus()}, label="t5")

    def _training_section(self, section: str) -> dict:
        """``training.<section>``, with the threads it runs with (its own ``threads``, else
        ``training.threads``; torch's CPU reductions depend on the thread count, so they are
        keyed)."""
        training = self.config.get("training", {})
        if section not in training:
            raise ConfigError(f"training.{section}: missing (needed by {{model: trained}} and retrieval.pool: corpus)")
        params = copy.deepcopy(training[section])
        return {**params, "threads": int(params.get("threads", training.get("threads", 1)))}

    def _training(self, section: str):
        """The params dataclass of a training stage (``genbench.models.train_<section>``)."""
        from genbench.models.train_encoder import EncoderTrainingParams
        from genbench.models.train_generator import GeneratorTrainingParams
        from genbench.models.train_text2text import Text2TextTrainingParams
        from genbench.models.train_vae import VAETrainingParams

        classes = {
            "encoder": EncoderTrainingParams,
            "vae": VAETrainingParams,
            "generator": GeneratorTrainingParams,
            "text2text": Text2TextTrainingParams,
        }
        return classes[section].from_config(self._training_section(section))

    def _corpus(self) -> Node:
        """The "web" corpus the trained models learn from, keyed by its config and the fonts it
        draws with (not the other files of their folder)."""
        from genbench.data.corpus import CorpusParams, check_corpus_config, corpus_palette, font_files

        cfg = self._training_section("corpus")
        fonts = font_files(cfg.get("fonts_dir"))
        check_corpus_config(cfg, fonts, where="training.corpus")
        params = CorpusParams.from_config(
            cfg,
            colours=corpus_palette(cfg),
            fonts={font.name: content_key(self.fingerprint(font)) for font in fonts},
            fonts_dir=str(fonts[0].parent),
        )
        return self.add_stage(params, "corpus", {}, label="digits")

    def _data_identity(self, info: DatasetInfo, data: dict) -> tuple[dict, str | None]:
        """(keyed identity, path) of a dataset's files: the fingerprint of its root folder or
        file; scikit-learn's version for the bundled digits; torchvision downloads are keyed by
        what is downloaded (torchvision checks their checksums), not by the folder's content."""
        source = info.to_json()["source"]
        root = data.get("roots", {}).get(info.name) or _default_root(data, info.name)
        root = root or source.get("root") or source.get("path")
        if source.get("type") == "digits":
            return {"kind": "package", "scikit-learn": _package_version("scikit-learn")}, root
        if data.get("download") and source.get("type") == "torchvision":
            return {"kind": "download", "class": source.get("class")}, root
        if not root:
            return {"kind": "absent"}, None
        return content_key(self.fingerprint(root)), root

    def _build(self) -> None:
        users = self.config.get("user_datasets", {})
        evaluations = []
        for name in self.config.get("datasets", []):
            info = get_dataset(name, users)
            self.datasets[name] = info
            evaluations += self._build_dataset(info)
        self.evaluations = evaluations
        inputs = {f"m{i:05d}": node for i, node in enumerate(evaluations)}  # these names are in the key
        if inputs:
            self.add_stage(AggregateParams(protocol=self.config.get("protocol", "honest")), "all", inputs)

    def _check_set_sizes(self, info: DatasetInfo) -> None:
        """At parse time, what the config alone shows: at least 2 classes, at least 2 shots (the
        probe's validation split takes one), and training sets of at least ``MIN_SET_ROWS``
        images (the distance metrics compare sets of rows)."""
        d = info.name
        if info.num_classes < 2:
            raise ConfigError(
                f"dataset {d!r} has {info.num_classes} class; a benchmark needs at least 2 "
                "(zero-shot, CLER and the probe tell classes apart)"
            )
        shots = min(self._section(d, "fewshot")["shots"])
        if shots < 2:
            raise ConfigError(
                f"dataset {d!r}: fewshot.shots {shots}: the linear probe holds out ceil(0.2 K) images a class "
                "for its validation split (as ELEVATER does), so at K = 1 no image is left to train on; "
                "use shot counts of 2 or more"
            )
        if shots * info.num_classes < MIN_SET_ROWS:
            raise ConfigError(
                f"dataset {d!r}: fewshot.shots {shots} x {info.num_classes} classes = {shots * info.num_classes} "
                f"images a set, fewer than the {MIN_SET_ROWS} that PRDC (k = 5 neighbours) and the proxy-A "
                "distance need; raise fewshot.shots"
            )

    def _build_dataset(self, info: DatasetInfo) -> list[Node]:
        d = info.name
        self._check_set_sizes(info)
        data = self._section(d, "data")
        configure = self.add_stage(ConfigureParams(dataset=_without_paths(info.to_json())), d, {})
        identity, root = self._data_identity(info, data)
        source = _without_paths(info.to_json()["source"])
        prepare = self.add_stage(
            PrepareParams.from_config(
                data, source=source, data=identity, root=root, stat_cache=str(self.stat_cache.path)
            ),
            d,
            {"configure": configure},
            label=source.get("type", ""),
        )
        encoder = _Encoder(*self._model("encoder"))
        features_cfg = self._section(d, "features")
        pack = pack_settings(self._section(d, "pack"), self.config.get("protocol", "honest"))
        selector = (
            _Encoder(*self._model("encoder", pack["selection_encoder"])) if pack["selection_encoder"] else encoder
        )
        ctx = _DatasetContext(info, configure, prepare, encoder, selector, features_cfg, pack)
        ctx.text_classifier = self._text_classifier(ctx, encoder)
        ctx.selection_text_classifier = self._text_classifier(ctx, selector, pack["selection_prompt"])
        ctx.paper_text_classifier = self._text_classifier(ctx, selector, PAPER_CLIP_PROMPT)
        ctx.test_features = self._features(ctx, prepare, "test")
        ctx.train_features = self._features(ctx, prepare, "train")
        ctx.full_train = [ctx.train_features]  # the original's zeroshot_metric: the whole train split
        ctx.train_and_val = ctx.full_train + ([self._features(ctx, prepare, "val")] if info.splits.get("val") else [])

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
                evaluations += self._evaluate(
                    ctx, [(pack, ctx.train_features)], source="original", strategy="-", shots=k, seed=seed
                )
        # with pack.draw_from, a generated or retrieved set has one pack per seed (else one, seed 0)
        drawn = ctx.pack["draw_from"] is not None
        set_seeds = fewshot["seeds"] if drawn else [0]
        if "retrieval" in sources:
            for k in fewshot["shots"]:
                for seed in set_seeds:
                    pack, feats = self._retrieval_pack(ctx, k, seed)
                    evaluations += self._evaluate(
                        ctx, [(pack, feats)], source="retrieval", strategy="-", shots=k, seed=seed
                    )
        if "generated" in sources or "combined" in sources:
            for strategy in self._section(d, "strategies"):
                for variant in self._variants(d, strategy):
                    for k in fewshot["shots"]:
                        packs = {seed: self._generated_pack(ctx, strategy, k, variant, seed) for seed in set_seeds}
                        axes = variant.labels
                        if "generated" in sources:
                            for seed, (pack, feats) in packs.items():
                                evaluations += self._evaluate(
                                    ctx,
                                    [(pack, feats)],
                                    source="generated",
                                    strategy=strategy,
                                    shots=k,
                                    seed=seed,
                                    **axes,
                                )
                        if "combined" in sources:
                            for seed in fewshot["seeds"]:
                                pack, feats = packs[seed if drawn else 0]
                                pairs = [(originals[(k, seed)], ctx.train_features), (pack, feats)]
                                evaluations += self._evaluate(
                                    ctx,
                                    pairs,
                                    source="combined",
                                    strategy=strategy,
                                    shots=k,
                                    seed=seed,
                                    combined=True,
                                    **axes,
                                )
        return evaluations

    def _features(
        self,
        ctx: "_DatasetContext",
        images: Node,
        split: str,
        encoder: "_Encoder | None" = None,
        reuse: list[Node] = (),
    ) -> Node:
        """Features of one image set (a prepared split, or a generated / retrieved set) by one
        encoder (the feature encoder unless given); images already encoded in a ``reuse``
        features artifact (same encoder) are taken from it by content digest."""
        encoder = encoder or ctx.encoder
        label = split if split != "images" else f"{_SET_KINDS[images.stage]}-{images.label}"
        return self.add_stage(
            FeaturesParams.from_config(ctx.features_cfg, split=split),
            ctx.info.name,
            {
                "images": images,
                "configure": ctx.configure,
                **encoder.inputs,
                **{f"reuse{i}": node for i, node in enumerate(reuse)},
            },
            wiring={"encoder": encoder.params},
            runtime={"encoder": encoder.runtime},
            label=label if encoder is ctx.encoder else f"{label}-{encoder.label}",
        )

    def _features_with(self, ctx: "_DatasetContext", feats: Node, encoder: "_Encoder") -> Node:
        """The same images as the features artifact ``feats``, encoded by ``encoder``."""
        if encoder is ctx.encoder:
            return feats
        reuse = [
            self._features_with(ctx, node, encoder) for name, node in feats.inputs.items() if name.startswith("reuse")
        ]
        return self._features(ctx, feats.inputs["images"], feats.params["split"], encoder, reuse=reuse)

    def _text_classifier(self, ctx: "_DatasetContext", encoder: "_Encoder", prompt: str | None = None) -> Node:
        """Per class, the normalised text embedding of the dataset's templates (averaged), or of
        the one ``prompt`` when given."""
        return self.add_stage(
            TextClassifierParams.from_config(ctx.features_cfg, prompt=prompt),
            ctx.info.name,
            {"configure": ctx.configure, **encoder.inputs},
            wiring={"encoder": encoder.params},
            runtime={"encoder": encoder.runtime},
            label="templates" if prompt is None else "prompt",
        )

    def _original_pack(self, ctx: "_DatasetContext", k: int, seed: int) -> Node:
        return self.add_stage(
            OriginalPackParams(shots=k, seed=seed),
            ctx.info.name,
            {"images": self._fewshot(ctx, k, seed), "configure": ctx.configure},
            label=f"k{k}-s{seed}",
        )

    def _fewshot(self, ctx: "_DatasetContext", k: int, seed: int) -> Node:
        return self.add_stage(
            FewShotParams.from_config(self._section(ctx.info.name, "fewshot"), shots=k, seed=seed),
            ctx.info.name,
            {"prepare": ctx.prepare, "configure": ctx.configure},
            label=f"k{k}-s{seed}",
        )

    def _variants(self, dataset: str, strategy: str) -> list["_Variant"]:
        """Every (generator, swept sampling setting) a generated set of ``strategy`` is made
        with: the ``generators`` map (else ``models.generator`` alone), each with its
        overrides, times every value of each list-valued setting of ``SWEEPABLE``, and for an
        img2img strategy times every ``img2img.strength``. Only the axes in use are named in
        the labels (a config without them keeps its keys and its columns)."""
        gen = self._section(dataset, "generation")
        if strategy in IMG2IMG_STRATEGIES:
            strength = self._section(dataset, "img2img")["strength"]
            gen = {**gen, "strength": strength if isinstance(strength, list) else [strength]}
        if strategy in LORA_STRATEGIES:
            gen = {**gen, "lora_scale": self._section(dataset, "lora")["scale"]}
        swept = [key for key in SWEEPABLE if isinstance(gen.get(key), list)]
        variants = []
        for name, spec in generator_specs(self.config):
            overrides = {k: v for k, v in spec.items() if k in GENERATOR_OVERRIDES}
            model = {k: v for k, v in spec.items() if k not in GENERATOR_OVERRIDES}
            for values in itertools.product(*[gen[key] for key in swept]):
                settings = {**gen, **dict(zip(swept, values)), **overrides}
                labels = ({"generator": name} if name is not None else {}) | {k: settings[k] for k in swept}
                variants.append(_Variant(name, model, settings, overrides.get("ti_resolution"), labels))
        return variants

    def _generated_pack(
        self, ctx: "_DatasetContext", strategy: str, k: int, variant: "_Variant", seed: int = 0
    ) -> tuple[Node, Node]:
        """A generated set of ``strategy`` by the variant's generator, and its K-per-class pack
        (for ``seed``, with pack.draw_from; else the one top-K pack)."""
        d = ctx.info.name
        gen = variant.generation
        strategy_params = self._section(d, "strategy_params").get(strategy) or {}
        plan_inputs: dict[str, Node] = {"configure": ctx.configure}
        wiring: dict[str, Any] = {}
        runtime: dict[str, Any] = {}
        if "file" in strategy_params:  # the file's content, not its path, identifies the plan
            path = resolve_user_file(strategy_params["file"])
            strategy_params = {**strategy_params, "file": content_key(self.fingerprint(path))}
            runtime["descriptions_file"] = str(path)
        if strategy in TEXTUAL_INVERSION_STRATEGIES:
            plan_inputs["embeddings"] = self._textual_inversion(ctx, TEXTUAL_INVERSION_STRATEGIES[strategy], variant)
        if strategy in IMG2IMG_STRATEGIES:
            plan_inputs["references"] = self._references(ctx, self._section(d, "img2img"), IMG2IMG_STRATEGIES[strategy])
        adapters = {"lora": self._lora(ctx, LORA_STRATEGIES[strategy], variant)} if strategy in LORA_STRATEGIES else {}
        if base_strategy(strategy, strategy_params) in STRATEGIES_NEEDING_TEXT2TEXT:
            wiring["text2text"], t2t_inputs, runtime["text2text"] = self._model("text2text")
            plan_inputs.update(t2t_inputs)
        params = PromptPlanParams.from_config(
            gen, strategy=strategy, strategy_params=strategy_params, descriptions_file=runtime.get("descriptions_file")
        )
        prompt_plan = self.add_stage(params, d, plan_inputs, wiring=wiring, runtime=runtime, label=strategy)
        samples = self._sample_images(ctx, prompt_plan, variant, adapters)
        pack_seed = seed if ctx.pack["draw_from"] is not None else gen["seed"]
        pack, feats = self._pack_external(ctx, "pack_generated", samples, k, pack_seed)
        if variant.name is not None:
            made = [prompt_plan, samples, feats, pack, *adapters.values()]
            if "embeddings" in plan_inputs:  # the generator's own tokens (not the T5, not configure)
                made.append(plan_inputs["embeddings"])
            self.generator_nodes.setdefault(variant.name, []).extend(made)
        return pack, feats

    def _pack_external(
        self, ctx: "_DatasetContext", stage: str, images: Node, k: int, seed: int, reuse: list[Node] = ()
    ) -> tuple[Node, Node]:
        """Features of a generated or retrieved set, and its pack of K images per class (drawn
        with ``seed`` from the top ``pack.draw_from`` when that is set)."""
        d = ctx.info.name
        feats = self._features(ctx, images, "images", reuse=reuse)
        retrieved = stage == "pack_retrieval"
        draw_from = ctx.pack["draw_from"]
        params = (RetrievedPackParams if retrieved else GeneratedPackParams)(
            shots=k,
            selection=ctx.pack["retrieval_selection" if retrieved else "selection"],
            seed=seed,
            draw_from=draw_from,
            on_shortfall=self._section(d, "fewshot")["on_shortfall"],
        )
        inputs = {"images": images, "configure": ctx.configure}
        if params.selection == "clip":
            inputs["features"] = self._features_with(ctx, feats, ctx.selector)
            inputs["text_classifier"] = ctx.selection_text_classifier
        label = f"{images.label}-k{k}" + (f"-s{seed}" if draw_from is not None else "")
        return self.add_stage(params, d, inputs, label=label), feats

    # -- retrieval and textual inversion ------------------------------------------------
    def _pool(self, ctx: "_DatasetContext") -> tuple[dict, dict[str, Node]]:
        """(params, inputs) of the retrieval pool: an existing pool folder, or one built from
        the dataset's own prepared train split (captioned with its first template; the demo)."""
        pool = self._section(ctx.info.name, "retrieval")["pool"]
        if pool == "corpus":
            return {"pool": "corpus"}, {"pool": self._corpus_pool(ctx)}
        if pool != "train_split":
            return {"pool": content_key(self.fingerprint(pool))}, {}
        node = self.add_stage(
            PoolParams(captions="first_template"),
            ctx.info.name,
            {"images": ctx.prepare, "features": ctx.train_features, "configure": ctx.configure, **ctx.encoder.inputs},
            wiring={"encoder": ctx.encoder.params},
            runtime={"encoder": ctx.encoder.runtime},
            label="train_split",
        )
        return {"pool": "train_split"}, {"pool": node}

    def _corpus_features(self, ctx: "_DatasetContext") -> Node:
        """The corpus's images encoded once by the feature encoder (the pool's image rows, and
        the rows retrieved copies reuse)."""
        return self._features(ctx, self._corpus(), "corpus")

    def _corpus_pool(self, ctx: "_DatasetContext") -> Node:
        """The corpus as a retrieval pool: its images (from the corpus's features) and captions
        embedded by the feature encoder, in clip-retrieval's layout beside img2dataset's."""
        return self.add_stage(
            PoolParams(captions="corpus"),
            ctx.info.name,
            {
                "images": self._corpus(),
                "features": self._corpus_features(ctx),
                "configure": ctx.configure,
                **ctx.encoder.inputs,
            },
            wiring={"encoder": ctx.encoder.params},
            runtime={"encoder": ctx.encoder.runtime},
            label="corpus",
        )

    def _retrieve(self, ctx: "_DatasetContext") -> Node:
        cfg = self._section(ctx.info.name, "retrieval")
        shots = self._section(ctx.info.name, "fewshot")["shots"]
        pool_params, pool_inputs = self._pool(ctx)
        runtime = {"encoder": ctx.encoder.runtime, "stat_cache": str(self.stat_cache.path)}
        if not pool_inputs:
            runtime["pool"] = cfg["pool"]
        params = RetrievalParams.from_config(
            cfg,
            device=ctx.features_cfg["device"],
            k_per_class=cfg.get("k_per_class") or max(*shots, ctx.pack["draw_from"] or 0),
        )
        held_out = {"held_out_test": ctx.test_features}  # what decontamination compares hits with
        if ctx.info.splits.get("val"):
            held_out["held_out_val"] = self._features(ctx, ctx.prepare, "val")
        return self.add_stage(
            params,
            ctx.info.name,
            {"configure": ctx.configure, "prepare": ctx.prepare, **held_out, **ctx.encoder.inputs, **pool_inputs},
            wiring={**pool_params, "encoder": ctx.encoder.params},
            runtime=runtime,
            label=cfg["kind"],
        )

    def _retrieval_pack(self, ctx: "_DatasetContext", k: int, seed: int = 0) -> tuple[Node, Node]:
        """A pack of retrieved images. From the pool built of the train split (or the corpus),
        the retrieved images are copies of its images: their features are taken from its own."""
        pool = self._section(ctx.info.name, "retrieval")["pool"]
        reuse = []
        if pool == "train_split":
            reuse = ctx.train_and_val
        elif pool == "corpus":
            reuse = [self._corpus_features(ctx)]
        return self._pack_external(ctx, "pack_retrieval", self._retrieve(ctx), k, seed, reuse=reuse)

    def _references(self, ctx: "_DatasetContext", cfg: dict, source: str) -> Node:
        """``cfg["ref_shot"]`` reference images per class (textual inversion's or img2img's):
        the seeded K-shot originals of the train split (checked against the held-out splits
        of ``prepare``), or the top retrieval hits."""
        if source == "original":
            inputs = {"images": self._fewshot(ctx, cfg["ref_shot"], cfg["seed"]), "prepare": ctx.prepare}
        else:
            inputs = {"images": self._retrieve(ctx)}
        return self.add_stage(
            ReferenceParams.from_config(cfg, source=source),
            ctx.info.name,
            {**inputs, "configure": ctx.configure},
            label=source,
        )

    def _textual_inversion(self, ctx: "_DatasetContext", source: str, variant: "_Variant") -> Node:
        d = ctx.info.name
        cfg = self._section(d, "textual_inversion")
        if variant.ti_resolution is not None:
            cfg = {**cfg, "resolution": variant.ti_resolution}
        refs = self._references(ctx, cfg, source)
        gen_params, gen_inputs, gen_runtime = self._model("generator", variant.model)
        return self.add_stage(
            TextualInversionParams.from_config(cfg, device=variant.generation["device"]),
            d,
            {"references": refs, "configure": ctx.configure, **gen_inputs},
            wiring={"generator": gen_params},
            runtime={"generator": gen_runtime},
            label=source + variant.suffix(generator_only=True),
            parts=ctx.info.num_classes,
        )

    def _lora(self, ctx: "_DatasetContext", source: str, variant: "_Variant") -> Node:
        """The LoRA of the variant's generator (one for the dataset, or one per class: one part
        job each), trained on ``lora.ref_shot`` reference images per class (the K-shot
        originals or the top retrieval hits)."""
        cfg = self._section(ctx.info.name, "lora")
        gen_params, gen_inputs, gen_runtime = self._model("generator", variant.model)
        params = LoraParams.from_config(cfg, device=variant.generation["device"])
        return self.add_stage(
            params,
            ctx.info.name,
            {"references": self._references(ctx, cfg, source), "configure": ctx.configure, **gen_inputs},
            wiring={"generator": gen_params},
            runtime={"generator": gen_runtime},
            label=source + variant.suffix(generator_only=True),
            parts=ctx.info.num_classes if params.scope == "class" else 1,
        )

    def _sample_images(
        self, ctx: "_DatasetContext", prompt_plan: Node, variant: "_Variant", adapters: dict | None = None
    ) -> Node:
        """The images of a prompt plan from the variant's generator (with the plan's learned
        tokens or reference images, and ``adapters``: a LoRA strategy's ``lora``)."""
        gen = variant.generation
        gen_params, gen_inputs, gen_runtime = self._model("generator", variant.model)
        gen_inputs = {**gen_inputs, **(adapters or {})}
        for name in ("embeddings", "references"):  # the learned tokens; img2img's reference images
            if name in prompt_plan.inputs:
                gen_inputs = {**gen_inputs, name: prompt_plan.inputs[name]}
        total = ctx.info.num_classes * gen["images_per_class"]
        params = SamplingParams.from_config(gen)
        node = self.add_stage(
            params,
            ctx.info.name,
            {"plan": prompt_plan, **gen_inputs},
            wiring={"generator": gen_params, "num_images": total},
            runtime={"generator": gen_runtime},
            label=prompt_plan.label + variant.suffix(),
            parts=paths.num_shards(total, params.shard_size),
        )
        if node not in self.sample_sets:
            self.sample_sets.append(node)
        return node

    def _evaluate(
        self, ctx: "_DatasetContext", pairs: list[tuple[Node, Node]], *, combined: bool = False, **labels
    ) -> list[Node]:
        """The evaluation artifacts of one external set (packs, with the features of the image
        sets they come from): the probe and CLER for every set; for a set that is not combined
        also the distribution metrics and the proxy-A distance. A combined set's pack 0 is the
        K-shot original pack; the full-train CLER variant replaces it by the full train split."""
        nodes = self._evaluation_nodes(ctx, pairs, combined, labels)
        if "generator" in labels:
            self.generator_nodes.setdefault(labels["generator"], []).extend(nodes)
        return nodes

    def _evaluation_nodes(
        self, ctx: "_DatasetContext", pairs: list[tuple[Node, Node]], combined: bool, labels: dict
    ) -> list[Node]:
        d = ctx.info.name
        external = {}
        for i, (pack, feats) in enumerate(pairs):
            external[f"pack{i}"] = pack
            external[f"features{i}"] = feats
        common = {
            **external,
            "test_features": ctx.test_features,
            "text_classifier": ctx.text_classifier,
            "configure": ctx.configure,
        }
        metrics = self._section(d, "metrics")
        label = _evaluation_label(labels)
        dedup = self._section(d, "retrieval")["dedup_threshold"]
        probe = ProbeParams(probe=self._section(d, "probe"), labels=labels, dedup_threshold=dedup)
        nodes = [self.add_stage(probe, d, common, label=label)]
        full_train = {}
        if labels["source"] in ("original", "combined"):
            full_train = {f"full_train{j}": node for j, node in enumerate(ctx.full_train)}
        cler = CLERParams.from_config(metrics, labels=labels)
        nodes.append(self.add_stage(cler, d, {**common, **full_train}, label=label))
        if combined:
            return nodes
        paper_clip = {
            "paper_text_classifier": ctx.paper_text_classifier,
            **{
                f"selection_features{i}": self._features_with(ctx, feats, ctx.selector)
                for i, (_, feats) in enumerate(pairs)
            },
        }
        distribution = DistributionParams.from_config(metrics, labels=labels)
        nodes.append(self.add_stage(distribution, d, {**common, **paper_clip, **full_train}, label=label))
        nodes.append(self.add_stage(PADParams.from_config(metrics, labels=labels), d, common, label=label))
        for spec in metrics.get("extra_encoders", []):
            nodes.append(self._extra_encoder_metrics(ctx, pairs, spec, metrics, labels))
        return nodes

    def _extra_encoder_metrics(
        self, ctx: "_DatasetContext", pairs: list[tuple[Node, Node]], spec: dict, metrics: dict, labels: dict
    ) -> Node:
        """Distribution metrics (e.g. classic FID on Inception features) with another encoder:
        the same image sets and packs, encoded once more, by that encoder only."""
        keyed, _, runtime = self._model("extra_encoder", spec)
        extra = _Encoder(keyed, {}, runtime, label=spec["type"])
        inputs = {"test_features": self._features_with(ctx, ctx.test_features, extra), "configure": ctx.configure}
        for i, (pack, feats) in enumerate(pairs):
            inputs[f"pack{i}"], inputs[f"features{i}"] = pack, self._features_with(ctx, feats, extra)
        return self.add_stage(
            DistributionParams.from_config(metrics, labels=labels),
            ctx.info.name,
            inputs,
            wiring={"encoder": keyed},
            label=f"{_evaluation_label(labels)}-{spec['type']}",
        )


SWEEPABLE = ("guidance", "steps", "scheduler", "strength")  # settings that may be lists: one set per value
GENERATOR_OVERRIDES = ("height", "width", "scheduler", "dtype", "shard_size", "ti_resolution")  # per generator


@dataclass
class _Variant:
    """One way a generated set is made: the generator (its name in ``generators``, None for
    ``models.generator``) and model spec, the generation settings (overrides and swept values
    applied), textual inversion's resolution for it, and the axis labels it adds (only the
    axes in use: ``generator``, and each swept setting)."""

    name: str | None
    model: dict
    generation: dict
    ti_resolution: int | None
    labels: dict

    def suffix(self, generator_only: bool = False) -> str:
        """The folder-label suffix of the axes in use: ``-sd21-g2-steps50``; empty without them."""
        return "".join(f"-{part}" for part in _axis_parts(self.labels, generator_only))


AXIS_PREFIXES = {"guidance": "g", "steps": "steps", "scheduler": "", "strength": "st"}  # in folder labels


def _axis_parts(labels: dict, generator_only: bool = False) -> list[str]:
    """The generator's name and each swept setting of ``labels``, as folder-label parts."""
    parts = [str(labels["generator"])] if "generator" in labels else []
    if not generator_only:
        parts += [f"{prefix}{_label_value(labels[k])}" for k, prefix in AXIS_PREFIXES.items() if k in labels]
    return parts


def _label_value(value) -> str:
    """A setting's value as it appears in folder labels (2.0 -> 2, 7.5 -> 7.5, None -> own)."""
    if value is None:
        return "own"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class _Encoder:
    """An encoder as the plan uses it: keyed params, upstream inputs (a tiny model's build),
    the runtime spec a job loads it from, and the short name its features' folders carry."""

    params: dict
    inputs: dict
    runtime: dict
    label: str = "sel"


@dataclass
class _DatasetContext:
    info: DatasetInfo
    configure: Node
    prepare: Node
    encoder: _Encoder  # the feature encoder
    selector: _Encoder  # the encoder whose CLIP score ranks images for the packs
    features_cfg: dict
    pack: dict  # the pack section, resolved for the protocol (genbench.core.protocol)
    text_classifier: Node | None = None
    selection_text_classifier: Node | None = None
    paper_text_classifier: Node | None = None
    test_features: Node | None = None
    train_features: Node | None = None
    full_train: list[Node] | None = None
    train_and_val: list[Node] | None = None  # what a train_split pool holds


def resolve_user_file(path: str) -> Path:
    """A file named in the config: as given (absolute, or relative to the working directory),
    else relative to this GenBench checkout (for the demo's own files); a clear error otherwise."""
    candidates = [Path(path).expanduser(), REPO_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"file {path} not found (looked in {', '.join(str(c) for c in candidates)})")


def _evaluation_label(labels: dict) -> str:
    """``generated-lang_enc-k5-s0``, ``original-k5-s0``, ``generated-lang_enc-sd21-g2-k5-s0``:
    which external set an evaluation is of (with the axes its labels name)."""
    parts = [labels["source"], labels["strategy"], *_axis_parts(labels), f"k{labels['shots']}", f"s{labels['seed']}"]
    return "-".join(p for p in parts if p and p != "-")


EVALUATION_GROUP = "evaluate"
EVALUATION_STAGES = ("elevater", "zeroshot_metric", "distribution_metrics", "proxy_distance")


def evaluation_group(node: Node) -> str:
    """The cluster group of an evaluation job: ``evaluate-<dataset>-<set label>``.

    Every evaluation of one external set (its probe, CLER, distribution metrics, PAD and the
    extra encoders' metrics) shares the id, so a cluster run with
    ``--group-components evaluate=<n>`` submits them as one Slurm job instead of one each."""
    if node.stage not in EVALUATION_STAGES:
        raise ValueError(f"{node.stage} is not an evaluation stage ({', '.join(EVALUATION_STAGES)})")
    return f"{EVALUATION_GROUP}-{node.scope}-{_evaluation_label(node.params['labels'])}"


def _is_hub_id(value: str) -> bool:
    """``org/name``: one slash, both parts non-empty."""
    parts = value.split("/")
    return len(parts) == 2 and all(parts)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


_PATH_KEYS = ("root", "path", "labels_file")


def _without_paths(obj: dict) -> dict:
    """A copy of a dataset declaration without its folder and file paths (which are keyed by
    content where they are read, so moving the data does not change a key)."""
    out = {k: v for k, v in obj.items() if k not in _PATH_KEYS}
    if isinstance(out.get("source"), dict):
        out["source"] = _without_paths(out["source"])
    return out


def _default_root(data: dict, dataset: str) -> str | None:
    root_dir = data.get("root_dir")
    return f"{root_dir}/{dataset}" if root_dir else None


def build_plan(config: dict, known_fingerprints: dict | None = None) -> Plan:
    """The plan for a validated config (``known_fingerprints``: see ``load_fingerprints``)."""
    return Plan(config, known_fingerprints=known_fingerprints)


FINGERPRINTS_ENV = "GENBENCH_RUN_FINGERPRINTS"


def save_fingerprints(plan: Plan) -> str:
    """Write the plan's input fingerprints to ``<results>/.genbench/fingerprints-<digest>.json``
    (named by its content, so concurrent dry runs never overwrite a run's file); return the path."""
    from genbench.core.artifacts import atomic_write_bytes, canonical_json

    text = canonical_json(plan.fingerprints).encode("utf-8")
    path = Path(plan.results_dir).resolve() / ".genbench" / f"fingerprints-{hashlib.sha256(text).hexdigest()[:16]}.json"
    if not path.exists():
        atomic_write_bytes(path, text)
    return str(path)


def load_fingerprints(path: str | None) -> dict | None:
    """The fingerprints a run's main process saved (None when there is no such file)."""
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
