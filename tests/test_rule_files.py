"""A rule's code is found from its rule file's name: every rule in ``rules/<file>.smk`` runs a
script of its own name that calls into the subpackage of docs/DESIGN.md's table."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {  # rule file -> the subpackage its rules' code lives in
    "models": "genbench.models",
    "configure": "genbench.data",
    "prepare": "genbench.data",
    "sample": "genbench.generation",
    "inject": "genbench.injection",
    "retrieve": "genbench.retrieval",
    "pack": "genbench.evaluation",
    "evaluate": "genbench.evaluation",
    "report": "genbench.report",
}


def _rules() -> dict[str, tuple[str, str]]:
    """rule -> (rule file stem, script path) of every rule with a script."""
    found = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text(encoding="utf-8")):
            name = re.match(r"rule (\w+):", block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            if name and script:
                found[name.group(1)] = (smk.stem, script.group(1))
    return found


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def test_every_rule_runs_its_own_script_in_its_files_package():
    rules = _rules()
    assert len(rules) >= 25
    wrong = []
    for rule, (stem, script) in rules.items():
        path = (REPO / "rules" / script).resolve()
        if path.stem != rule:
            wrong.append(f"{rule}: runs {path.name}")
        if stem in PACKAGES and not any(m.startswith(PACKAGES[stem]) for m in _imported_modules(path)):
            wrong.append(f"{rule} ({stem}.smk): {path.name} calls nothing in {PACKAGES[stem]}")
    assert not wrong, wrong


def test_every_rule_file_is_mapped():
    stems = {p.stem for p in (REPO / "rules").glob("*.smk")} - {"common"}
    assert stems == set(PACKAGES)
