"""docs/CONFIG.md is what `genbench config-doc` writes from the schema, config.yaml and the
stage dataclasses; rewrite it with `.venv/bin/genbench config-doc > docs/CONFIG.md`."""

from pathlib import Path

from genbench.core.config import load_schema
from genbench.plan.config_doc import _keys, render_config_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"


def test_config_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render_config_doc(), (
        "docs/CONFIG.md is out of date: .venv/bin/genbench config-doc > docs/CONFIG.md"
    )


def test_every_schema_key_has_a_row_that_says_how_it_is_keyed():
    lines = [line for line in render_config_doc().splitlines() if line.startswith("| `")]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[4].strip() for line in lines}
    keys = [key for key, spec in _keys(load_schema()) if spec.get("type") != "object" or "properties" not in spec]
    assert set(keys) <= set(rows)
    unexplained = [key for key in keys if rows[key] == "-"]
    assert not unexplained, f"keys neither read by a stage dataclass nor listed in PLAN_KEYS: {unexplained}"
