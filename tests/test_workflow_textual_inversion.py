"""Retrieval and both textual-inversion strategies through the real workflow, on a 2-class set."""

import pandas as pd
import pytest
from safetensors.torch import load_file
from workflow_helpers import quick_config, run_snakemake, write_digits_folder

from genbench.core.artifacts import read_manifest, verify_tree

pytestmark = pytest.mark.workflow


def test_retrieval_and_textual_inversion_strategies_end_to_end(tmp_path):
    classes = write_digits_folder(tmp_path / "folder", per_class=10, num_classes=2)
    config = quick_config(
        tmp_path,
        datasets=["two-digits"],
        user_datasets={
            "two-digits": {
                "classes": classes,
                "templates": ["a photo of the {}."],
                "source": {"type": "folder", "path": str(tmp_path / "folder")},
            }
        },
        strategies=["ti_original", "ti_retrieval"],
        sources=["generated", "retrieval"],
        textual_inversion={"ref_shot": 2, "steps": 2, "batch_size": 1, "resolution": 32},
    )
    run_snakemake(tmp_path, config)
    table = pd.read_csv(tmp_path / "results" / "summary.csv")
    rows = set(zip(table.source, table.strategy))
    assert rows == {("generated", "ti_original"), ("generated", "ti_retrieval"), ("retrieval", "-")}
    assert table["linear_probe"].notna().all() and table["cler"].notna().all()

    learned = sorted((tmp_path / "results" / "textual_inversion").glob("*/*/tokens/class-*.safetensors"))
    assert len(learned) == 2 * len(classes)  # one token per class, for each reference source
    tokens = {next(iter(load_file(path))) for path in learned}
    assert tokens == {"<two-digits-digit_0>", "<two-digits-digit_1>"}

    plans = sorted((tmp_path / "results" / "prompt_plan").glob("*/*/plan.jsonl"))
    assert all("<two-digits-digit_" in path.read_text() for path in plans)
    retrieved = next((tmp_path / "results" / "retrieve").glob("*/*"))
    assert read_manifest(retrieved)["summary"]["images"] > 0
    checked, problems = verify_tree(tmp_path / "results")
    assert checked > 20 and problems == []
