"""The warm job server (genbench.workflow.warm): a model job hands itself over to a fork of a
process that has its packages imported, and behaves as if it had run itself: its folder,
environment, arguments, output and exit status; a killed job process takes its fork with it;
the server ends with the run that owns it. (The workflow tests run every model job this way,
and a warm run's artifacts are compared byte for byte with a cold run's in test_staleness.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from genbench.workflow.warm import CHILD_ENV, SERVER_ENV, SWITCH_ENV, gpu_visible, hand_over, server_spec

REPO = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent(
    """
    import os, sys, time
    from genbench.workflow.warm import hand_over
    hand_over(sys.argv[1])
    print("ran in", os.getpid(), os.getcwd(), os.environ.get("JOB_VALUE"), sys.argv[2:], os.environ.get("{child}"))
    sys.stdout.flush()
    if sys.argv[2:] == ["sleep"]:
        time.sleep(60)
    sys.exit(int(sys.argv[2]) if sys.argv[2:] and sys.argv[2].isdigit() else 0)
    """
).replace("{child}", CHILD_ENV)


def _wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def server(tmp_path):
    """A job server that preloads nothing, owned by a process the test can end."""
    owner = subprocess.Popen(["sleep", "300"])
    path = tmp_path / "jobs.sock"
    code = f"from genbench.workflow.warm import serve; serve({owner.pid}, {str(path)!r}, preload=())"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert _wait_for(path.exists), "the server did not open its socket"
    yield owner, proc, path
    owner.kill()
    owner.wait()
    proc.wait(timeout=10)


def _run_job(tmp_path, spec: str, *args: str, **popen) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO), SERVER_ENV: spec, "JOB_VALUE": "42"}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True, **popen
    )


def _spec(owner: int, path: Path) -> str:
    return f"{socket.gethostname()}|{owner}|{path}"


def test_a_model_job_runs_in_a_fork_with_its_folder_environment_arguments_and_status(server, tmp_path):
    owner, _, path = server
    job = _run_job(tmp_path, _spec(owner.pid, path), "model", "3")
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 3
    assert out.split() == ["ran", "in", out.split()[2], str(tmp_path), "42", "['3']", "1"], out
    assert int(out.split()[2]) != job.pid


def test_other_kinds_and_jobs_without_a_server_run_cold(server, tmp_path):
    owner, _, path = server
    for kind, spec in (("light", _spec(owner.pid, path)), ("model", f"another-host|{owner.pid}|{path}")):
        job = _run_job(tmp_path, spec, kind, "0")
        out, _ = job.communicate(timeout=30)
        assert job.returncode == 0 and out.split()[2] == str(job.pid) and out.split()[-1] == "None", (kind, out)


def test_killing_the_job_process_kills_its_fork(server, tmp_path):
    owner, _, path = server
    job = _run_job(tmp_path, _spec(owner.pid, path), "model", "sleep")
    line = job.stdout.readline()
    fork = int(line.split()[2])
    assert fork != job.pid and _alive(fork)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert _wait_for(lambda: not _alive(fork), 5), "the fork outlived its job process"


def test_the_server_ends_with_its_owner_and_removes_its_socket(server):
    owner, proc, path = server
    owner.kill()
    owner.wait()
    proc.wait(timeout=10)
    assert not path.exists()


def test_warm_starts_are_off_when_switched_off_or_a_gpu_is_visible(monkeypatch):
    monkeypatch.setenv(SWITCH_ENV, "0")
    assert server_spec(os.getpid()) is None
    monkeypatch.setenv(SWITCH_ENV, "1")
    monkeypatch.setattr("genbench.workflow.warm.gpu_visible", lambda: True)
    assert server_spec(os.getpid()) is None
    monkeypatch.setattr("genbench.workflow.warm.gpu_visible", lambda: False)
    host, owner, path = server_spec(os.getpid()).split("|")
    assert host == socket.gethostname() and int(owner) == os.getpid() and path.endswith(".sock")


def test_cuda_visible_devices_empty_hides_the_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu_visible()


def test_a_slurm_job_never_hands_over(monkeypatch, tmp_path):
    monkeypatch.setenv(SERVER_ENV, _spec(os.getpid(), tmp_path / "none.sock"))
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    hand_over("model")  # returns: runs cold, starts no server
    assert not (tmp_path / "none.sock.lock").exists()


@pytest.mark.parametrize("reads_the_request", [True, False], ids=["closed", "reset"])
def test_a_job_runs_cold_when_the_server_goes_away_before_forking(tmp_path, reads_the_request):
    path = tmp_path / "gone.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    job = _run_job(tmp_path, _spec(os.getpid(), path), "model", "5")
    conn, _ = listener.accept()
    if reads_the_request:
        time.sleep(0.2)
        conn.recv(1 << 20)
    conn.close()  # without forking: unread data makes it a reset
    listener.close()
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 5 and out.split()[2] == str(job.pid), out


def test_a_server_that_cannot_open_its_socket_sends_jobs_cold_at_once(tmp_path):
    from genbench.workflow.warm import _connect, _server_failed, serve

    path = str(tmp_path / ("s" * 120))  # longer than an AF_UNIX address holds
    Path(f"{path}.lock").write_text("")
    serve(os.getpid(), path, preload=())
    assert _server_failed(path)
    started = time.monotonic()
    assert _connect(os.getpid(), path, wait_seconds=60) is None
    assert time.monotonic() - started < 30  # it read the lock instead of waiting out its 60 s


def test_a_failing_preload_is_skipped(tmp_path, monkeypatch):
    from genbench.workflow.warm import _preload

    (tmp_path / "broken_at_import.py").write_text("raise RuntimeError('no driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("broken_at_import", "no_such_module_here", "json:no_such_attribute"):
        _preload(name)  # no exception: the job imports it itself and reports what fails
