"""Warm starts for model jobs on the local executor: a job server imports the heavy packages
once, and each model job runs in a fork of it instead of paying for them again.

On 2 cores a model job spends 6-9 s importing ``torch``, ``open_clip`` and ``diffusers``
before its first line of work (``job_kinds``), and a small run has dozens of them. With the
server, such a job process (started by Snakemake as usual) hands itself over:

1. ``hand_over`` (first thing in ``start_job``) connects to the server's Unix socket and sends
   its command line, working folder and environment, with its stdin, stdout and stderr file
   descriptors (``SCM_RIGHTS``);
2. the server forks; the child takes those descriptors, folder and environment, pins BLAS
   threads to the job's (``OMP_NUM_THREADS``, as a cold job's libraries read it), and runs the
   same script (Snakemake's generated file) with the packages already imported;
3. the job process waits and exits with the child's status. If it dies (Snakemake killed, a
   ``kill -9``), the server sees its socket close and kills the child's process group.

Snakemake, its logs, its job records and ``--rerun-incomplete`` see an ordinary job. The
server never runs a computation itself (no tensor is made before a fork, no CUDA context:
forking after either is unsafe), and exits when the Snakemake process that owns it is gone.

Only ``model`` jobs hand over: they may load every heavy package, so a warm start changes
nothing their kind promises. It is on for local runs on machines without a visible NVIDIA GPU (``common.smk`` exports
``GENBENCH_JOB_SERVER``); ``GENBENCH_WARM_JOBS=0`` turns it off. A Slurm job, or a job on
another host, runs cold. The first model job of a run starts the server and runs cold itself
(a dry run, or a run with no model job, starts none); the next ones queue on its socket while
it imports.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from genbench.core.artifacts import pid_alive

SERVER_ENV = "GENBENCH_JOB_SERVER"  # "<host>|<owner pid>|<socket path>", set by common.smk
SWITCH_ENV = "GENBENCH_WARM_JOBS"  # "0": every job starts cold
CHILD_ENV = "GENBENCH_WARM_CHILD"  # set in a forked child: it runs the job itself
# What a model job would import: the packages, and the lazily imported classes it loads models
# with ("module:attribute"; diffusers and transformers import a class's module on first access,
# 2-10 s of a full-size job otherwise). Nothing here makes a tensor.
PRELOAD = (
    "torch",
    "open_clip",  # brings torchvision and transformers
    "diffusers:AutoPipelineForText2Image",  # brings every pipeline, scheduler and model class
    "transformers:CLIPTextModel",
    "transformers:CLIPTokenizer",
    "transformers:T5ForConditionalGeneration",
    "transformers:AutoModelForSeq2SeqLM",
    "safetensors.torch",
)
HEADER = struct.Struct("!Q")
STARTED = b"S"  # the server's first byte to a job: its fork runs (then the exit status follows)
FAILED = "failed"  # written into the lock file by a server that could not open its socket
MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 107 bytes


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this machine's jobs. A process that has touched the
    CUDA driver (libraries may, at import) cannot fork a child that uses CUDA, so a machine
    with a GPU runs every job cold; there, model jobs are long and their imports a small part."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def server_spec(owner_pid: int) -> str | None:
    """The value of ``GENBENCH_JOB_SERVER`` for a local run owned by ``owner_pid`` (None when
    warm starts are switched off, or a GPU is visible)."""
    if os.environ.get(SWITCH_ENV, "1") == "0" or gpu_visible():
        return None
    name = f"genbench-jobs-{os.getuid()}-{owner_pid}.sock"
    path = Path(tempfile.gettempdir()) / name
    if len(str(path)) > MAX_SOCKET_PATH:
        path = Path("/tmp") / name
    return f"{socket.gethostname()}|{owner_pid}|{path}"


def _usable_spec() -> tuple[int, str] | None:
    spec = os.environ.get(SERVER_ENV)
    if not spec or os.environ.get(CHILD_ENV) or os.environ.get("SLURM_JOB_ID"):
        return None
    host, owner, path = spec.split("|", 2)
    if host != socket.gethostname():
        return None
    return int(owner), path


def hand_over(kind: str) -> None:
    """Run this job in a warm fork of the job server and exit with its status; return (and
    run cold) when the job is not a model job or no server is there to take it."""
    usable = _usable_spec() if kind == "model" else None
    if usable is None:
        return
    owner, path = usable
    conn = _connect(owner, path)
    if conn is None:
        return
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
    except OSError:  # e.g. a closed stdin: nothing was started, run cold
        conn.close()
        return
    reply = b""
    try:
        while chunk := conn.recv(64):
            reply += chunk
    except OSError:  # reset: the server closed without reading (it died while importing)
        pass
    if not reply.startswith(STARTED):  # the server went away before it forked: run cold
        conn.close()
        return
    status = reply[len(STARTED) :]
    os._exit(int(status) if status.isdigit() else 1)  # no status: the server died mid-job


def _connect(owner: int, path: str, wait_seconds: float = 10.0) -> socket.socket | None:
    """A connection to the run's server. The first model job of a run starts the server and
    runs cold (None); the others wait for its socket (it listens before it preloads, so they
    queue there). None as well when the server cannot be reached."""
    deadline = time.monotonic() + wait_seconds
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except OSError:
            conn.close()
        if _start_server(owner, path) or time.monotonic() > deadline or _server_failed(path):
            return None
        time.sleep(0.05)


def _server_failed(path: str) -> bool:
    try:
        return Path(f"{path}.lock").read_text() == FAILED
    except OSError:
        return False


def _start_server(owner: int, path: str) -> bool:
    """Start the job server in the background, once per run: True for the one job that claims
    the lock."""
    try:
        fd = os.open(f"{path}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    command = [sys.executable, "-m", "genbench.workflow.warm", str(owner), path]
    subprocess.Popen(
        command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return True


def serve(owner: int, path: str, preload: tuple[str, ...] = PRELOAD, poll_seconds: float = 0.05) -> None:
    """Import ``preload``, then fork one child per request until the process ``owner`` is gone."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        Path(path).unlink(missing_ok=True)  # this run's lock is ours: a socket file there is stale
        listener.bind(path)
        listener.listen(64)  # jobs that connect while the packages load wait in the backlog
    except OSError:
        Path(f"{path}.lock").write_text(FAILED)  # every job of the run starts cold, at once
        return
    for name in preload:
        _preload(name)
    running: dict[socket.socket, int] = {}  # client connection -> child pid
    last_owner_check = 0.0
    try:
        while True:
            if time.monotonic() - last_owner_check > 1.0:
                if not pid_alive(owner):
                    break
                last_owner_check = time.monotonic()
            readable, _, _ = select.select([listener, *running], [], [], poll_seconds)
            for conn in readable:
                if conn is listener:
                    _accept(listener, running)
                else:  # a client that closed its end: the job process is gone
                    _kill(running.pop(conn))
                    conn.close()
            _reap(running)
    finally:
        for conn, pid in running.items():
            _kill(pid)
            conn.close()
        listener.close()
        for leftover in (path, f"{path}.lock"):
            Path(leftover).unlink(missing_ok=True)


def _preload(name: str) -> None:
    """Import ``module`` or ``module:attribute``; what a library version lacks is skipped (the
    job then imports it itself)."""
    import importlib

    module, _, attribute = name.partition(":")
    try:
        loaded = importlib.import_module(module)
        if attribute:
            getattr(loaded, attribute)
    except Exception:  # whatever fails here, the job meets (and reports) itself
        pass


def _accept(listener: socket.socket, running: dict) -> None:
    conn, _ = listener.accept()
    try:
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        (size,) = HEADER.unpack(header)
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed mid-request")
            data += chunk
        request = json.loads(data)
    except (OSError, ValueError, struct.error):
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(STARTED)
    except OSError:
        pass  # the job process is gone: the next select sees its socket closed
    running[conn] = pid


def _reap(running: dict) -> None:
    """Send each finished child's exit status to its client."""
    for conn, pid in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.sendall(str(code if code >= 0 else 128 - code).encode())
            except OSError:
                pass
            conn.close()
            del running[conn]


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _run_child(request: dict, fds: list[int]) -> None:
    """In the fork: become the job (its descriptors, folder, environment, arguments), run its
    script, and exit with its status."""
    code = 1
    try:
        os.setpgid(0, 0)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[CHILD_ENV] = "1"
        sys.argv = list(request["argv"])
        _limit_blas_threads(os.environ.get("OMP_NUM_THREADS"))
        import runpy

        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if done.code is not None and not isinstance(done.code, int):
                print(done.code, file=sys.stderr)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        _run_exit_handlers()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _limit_blas_threads(threads: str | None) -> None:
    """A cold job's BLAS reads OMP_NUM_THREADS (the rule's threads) when numpy loads; in the
    fork numpy is loaded already, so the limit is applied now."""
    if not threads or not threads.isdigit():
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads))


def _run_exit_handlers() -> None:
    """``atexit`` handlers (the log's last line) run at interpreter exit, which ``os._exit`` skips."""
    import atexit

    atexit._run_exitfuncs()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
