"""docs/CONFIG.md, written from the schema, the embedded config.yaml and the stage dataclasses.

Every key of the schema gets one row: its type, its default (config.yaml's value), how it
enters the artifact keys and its description. How a key is keyed comes from the stage
dataclasses (``genbench.plan.stages``): a field reads its config key (``config_keys``), and is
keyed, keyed if changed, or runtime. Keys that the plan itself reads (which datasets, sources
and strategies exist, which models are loaded) are listed in ``PLAN_KEYS``.
``genbench config-doc`` prints the page; ``tests/test_config_doc.py`` fails when the file
differs from it.
"""

from __future__ import annotations

from typing import Any

from genbench.core.config import DEFAULT_CONFIG, load_config, load_schema
from genbench.core.stage import KEYED_IF_CHANGED, RUNTIME

# keys the plan reads itself: they decide which artifacts exist, or enter keys as identities
PLAN_KEYS = {
    "results_dir": "where the artifacts are written (not keyed: a results folder can move)",
    "protocol": "keyed (aggregate); picks the pack defaults of docs/PROTOCOL.md",
    "datasets": "which datasets are planned",
    "user_datasets": "keyed (configure, and through it everything of the dataset)",
    "per_dataset": "merged into the sections it names, per dataset",
    "data.root_dir": "where the files are read; keyed by their content (prepare), not the path",
    "data.roots": "where the files are read; keyed by their content (prepare), not the path",
    "models": "keyed by content (a local path), hub revision (a hub id) or the building artifact",
    "generators": "one set per generator; each keyed like models.generator, its overrides like generation's",
    "strategies": "one generated set per strategy",
    "strategy_params": "keyed (prompt_plan); a descriptions file by its content",
    "sources": "which external sets are evaluated",
    "retrieval.pool": "keyed by the pool folder's content, or the artifact that builds it",
    "img2img.ref_shot": "keyed (textual_inversion_prepare: img2img's references, textual inversion's when equal)",
    "img2img.seed": "keyed (textual_inversion_prepare: img2img's references, textual inversion's when equal)",
    "lora.ref_shot": "keyed (textual_inversion_prepare: the LoRA's references, textual inversion's when equal)",
    "pack.selection_encoder": "keyed by the encoder's identity (features, text_classifier)",
    "metrics.extra_encoders": "one more features and distribution_metrics per encoder, keyed by its identity",
    "training.threads": "default threads of every training stage (keyed there)",
    "training.corpus.fonts_dir": "where the fonts are read; keyed by their content (build_corpus)",
    "report": "what results/report/findings.txt checks (not keyed)",
    "tracking": "optional Weights & Biases logging of the tables (not keyed)",
    "threads": "torch threads per job (not keyed)",
}
HEADER = """# Configuration reference

Every key of the workflow config, written by `genbench config-doc` from
`genbench/core/schema/config.schema.yaml` (types, descriptions), `config.yaml` (the defaults:
the embedded config, the CPU demo) and the stage parameter dataclasses (how each key enters the
artifact keys). `tests/test_config_doc.py` fails when this page is out of date.

**Keyed** keys are in the recipe of the artifacts named: changing one gives those artifacts (and
everything downstream) new keys, and they are rebuilt beside the old ones. **Keyed if changed**
keys enter the recipe only off their default, so that adding an option did not change any
finished artifact's key. **Runtime** keys never change a key (batch sizes, workers, what to do
on a shortfall). A `per_dataset` override of a key is keyed like the key.

| key | type | default | in the keys | description |
|---|---|---|---|---|
"""


def _type(spec: dict) -> str:
    """A short type of a schema node: ``integer >= 1``, ``one of a, b``, ``list of string``."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return {"posint": "integer >= 1", "model": "model spec"}.get(name, name)
    if "enum" in spec:
        return "one of " + ", ".join("null" if v is None else str(v) for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_type(option) for option in spec["oneOf"])
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind)


def _keys(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(dotted key, schema node) of every property, depth first in schema order."""
    out = []
    for name, spec in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        out.append((key, spec))
        if spec.get("type") == "object" and "properties" in spec and key not in ("per_dataset",):
            out += _keys(spec, f"{key}.")
    return out


def _default(config: dict, key: str) -> str:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "-"
        node = node[part]
    if isinstance(node, dict) and node:
        return "(section)"
    text = "null" if node is None else str(node).replace("True", "true").replace("False", "false")
    return f"`{text}`" if len(text) <= 40 else f"`{text[:37]}...`"


def key_fields() -> dict[str, list]:
    """dotted config key -> [(stage, field)] of the dataclass fields that read it."""
    from genbench.plan.stages import STAGE_PARAMS

    fields: dict[str, list] = {}
    for cls in STAGE_PARAMS:
        keys = cls.config_keys()
        for field in cls.fields():
            if field.name in keys:
                fields.setdefault(keys[field.name], []).append((cls.STAGE, field))
    return fields


def _keyed_text(key: str, fields: dict) -> str:
    """How a key enters the artifact keys: the stages whose fields read it (or its section)."""
    parts = key.split(".")
    found = []
    for i in range(len(parts), 0, -1):
        found += fields.get(".".join(parts[:i]), [])
        if found:
            break
    if found:
        by_role: dict[str, list[str]] = {}
        for stage, field in found:
            by_role.setdefault(field.metadata.get("role", "keyed"), []).append(stage)
        labels = {KEYED_IF_CHANGED: "keyed if changed", RUNTIME: "runtime"}
        return "; ".join(f"{labels.get(r, 'keyed')} ({', '.join(sorted(set(s)))})" for r, s in by_role.items())
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in PLAN_KEYS:
            return PLAN_KEYS[".".join(parts[:i])]
    return "-"


def _description(spec: dict, fields: list) -> str:
    """The schema's description, else the doc of the first dataclass field reading the key."""
    text = spec.get("description") or next((f.metadata.get("doc") for _, f in fields if f.metadata.get("doc")), "")
    return " ".join(str(text).split()).replace("|", "\\|")


def _built_in_default(fields: list) -> str:
    """A default the code holds (a key config.yaml leaves out), as the fields reading it say."""
    import dataclasses

    defaults = {repr(f.default) for _, f in fields if f.default is not dataclasses.MISSING}
    return f"`{defaults.pop()}` (built in)".replace("'", "") if len(defaults) == 1 else "-"


def render_config_doc() -> str:
    """The text of docs/CONFIG.md."""
    schema, config, fields = load_schema(), load_config(DEFAULT_CONFIG), key_fields()
    rows = []
    for key, spec in _keys(schema):
        default = _default(config, key)
        if default == "-":
            default = _built_in_default(fields.get(key, []))
        rows.append(
            f"| `{key}` | {_type(spec)} | {default} | "
            f"{_keyed_text(key, fields)} | {_description(spec, fields.get(key, []))} |"
        )
    return HEADER + "\n".join(rows) + "\n"
