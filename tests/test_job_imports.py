"""Each workflow script imports only the heavy packages its kind allows
(``genbench.workflow.job_kinds``): checked on the module set after its top-level imports,
in a fresh interpreter per script, never on a timing. What each job loaded at run time is
checked on the workflow tests' logs (``assert_jobs_loaded_only_allowed``)."""

import json
import os
import subprocess
import sys

from workflow_helpers import REPO

from genbench.workflow.job_kinds import SCRIPT_KINDS, script_imports

SCRIPTS = REPO / "workflow_scripts"
# Forks one child per script from an interpreter that has imported nothing heavy; each child
# runs the script's imports and reports the heavy packages it then holds.
PROBE = """
import json, os, sys
from genbench.workflow.job_kinds import heavy_packages_loaded
found = {}
for name, code in json.loads(sys.stdin.read()).items():
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        exec(compile(code, name, "exec"), {"__name__": "__probe__"})
        os.write(write, json.dumps(heavy_packages_loaded()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[name] = json.loads(pipe.read() or "null")
    os.wait()
print(json.dumps(found))
"""


def test_every_script_has_a_kind():
    scripts = {path.stem for path in SCRIPTS.glob("*.py")}
    kinds = set(SCRIPT_KINDS)
    assert scripts == kinds, f"without a kind: {scripts - kinds}; gone: {kinds - scripts}"


def test_scripts_import_only_what_their_kind_uses():
    restricted = {name: kind for name, kind in SCRIPT_KINDS.items() if kind.name != "model"}
    codes = {name: script_imports(SCRIPTS / f"{name}.py") for name in restricted}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps(codes),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    loaded = json.loads(out)
    assert set(loaded) == set(restricted)
    over = {name: sorted(set(found) - set(restricted[name].uses)) for name, found in loaded.items()}
    assert not {name: extra for name, extra in over.items() if extra}, over
    assert not [name for name, found in loaded.items() if found is None]  # every child reported


def test_the_probe_sees_a_heavy_import():
    """The check is live: a script that imports torch at the top is caught."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps({"bad": "import torch"}),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    assert json.loads(out) == {"bad": ["torch"]}
