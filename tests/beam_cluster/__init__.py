"""Real Beam engines on one machine, for proving that the pipeline's Beam components run on them.

`FlinkCluster` (flink.py) and `SparkCluster` (spark.py) start, each part in its own process on loopback:
- the engine itself: a Flink session cluster (a JobManager and N TaskManagers, separate JVMs) or a Spark standalone
  master and workers, from the distributions' own jars (engines.py fetches them);
- Beam's job server for that engine (Java, Beam's runner jars), which receives each Beam component's job and its
  staged artifacts from the pipeline and submits it to the engine;
- SDK workers, two ways, chosen per job by its Beam args (`beam_args("pool")` or `beam_args("boot")`):
  - `WorkerPools`: a worker pool beside each TaskManager (Spark worker), started once with the cluster in the
    **image environment**, a copy of the project's virtual environment with the project installed as a package
    (what the pipeline image holds). The engine starts each worker through the PROCESS environment's command,
    which asks its TaskManager's pool (pool.py); the worker is a thread of a process that imported TensorFlow and
    the project at the cluster's start. Runs use it with `--beam-workers-installed`: nothing is staged.
  - `BootedWorkers`: each worker started through **Beam's own boot** (the Go program of Beam's SDK containers,
    built from the Go module proxy), as a container would: a fresh copy of the **worker environment** and a
    semi-persistent folder of its own. Boot fetches what the job staged from the job server, pip-installs it, and
    starts the SDK harness. The worker environment is a copy of the project's virtual environment (hard links, so
    it costs no disk and a second) with the project's own install taken out, so `import components` fails there
    until a job ships the project: those workers see only what the job sends them.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.beam_cluster.pool import POOL_ENV  # where the PROCESS command finds its TaskManager's pool

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_VENV = PROJECT_ROOT / ".venv"
# The editable install's files: a .pth hook, its finder module and the dist-info that names the project.
_PROJECT_INSTALL = ("__editable__*fraud_pipeline*", "fraud_pipeline-*.dist-info")
# What a copy of the source leaves out: environments, outputs and caches, none of them the project's.
NOT_SOURCE = (".venv*", ".git", "output", "build", "site", "results", "*.egg-info", "__pycache__", ".*_cache")
# Modules the project is made of; none may import in the worker environment before a job ships them.
PROJECT_MODULES = ("contract", "components", "transform", "trainer", "pipeline")
# What a JVM on Java 17 must be allowed to reach for Flink 1.16 and Spark 3.2 (Flink 1.18's env.java.opts.all).
JAVA_17_OPENS = [
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    *(
        f"--add-opens=java.base/{package}=ALL-UNNAMED"
        for package in (
            "java.lang",
            "java.lang.invoke",
            "java.lang.reflect",
            "java.io",
            "java.net",
            "java.nio",
            "java.text",
            "java.time",
            "java.util",
            "java.util.concurrent",
            "java.util.concurrent.atomic",
            "java.util.concurrent.locks",
            "sun.nio.ch",
            "sun.nio.cs",
            "sun.security.action",
            "sun.util.calendar",
        )
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def worker_environment(folder: Path, venv: Path = PROJECT_VENV) -> Path:
    """A copy of venv without the project installed; returns its python.

    A venv that is a symbolic link is copied from what it points to: `cp -al` of the link would copy the link, and
    removing the project from the copy would remove it from the real venv.
    """
    venv = Path(venv).resolve()
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    try:
        subprocess.run(["cp", "-al", str(venv), str(folder)], check=True)  # hard links: instant, no disk
    except subprocess.CalledProcessError:
        shutil.copytree(venv, folder, symlinks=True)
    if folder.is_symlink() or folder.resolve() == venv:
        raise RuntimeError(f"{folder} is not a copy of {venv}: nothing is removed from it")
    site_packages = next(folder.glob("lib/python3*/site-packages"))
    for pattern in _PROJECT_INSTALL:
        for path in site_packages.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / "bin" / "fraud-pipeline").unlink(missing_ok=True)
    return folder / "bin" / "python"


def image_environment(folder: Path, venv: Path = PROJECT_VENV) -> Path:
    """What the pipeline image holds, as a folder: a copy of venv with this project installed as a package (not the
    editable install, so the workers run the installed copy, not the source tree). Returns its python."""
    python = worker_environment(folder, venv)
    # Built from a copy of the source: setuptools writes its build/ folder beside the setup.py it builds.
    source = folder.parent / f"{folder.name}-source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", str(source)],
        check=True,
        capture_output=True,
        cwd=folder,
    )
    shutil.rmtree(source)
    return python


def importable(python: Path, module: str, cwd: Path) -> bool:
    """Whether module imports in that Python, from cwd, with nothing added to its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", f"import {module}"], cwd=cwd, env=env, capture_output=True)
    return probe.returncode == 0


class Processes:
    """Processes started under one folder, each with its log there; stopped in reverse order."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            self.started[name] = subprocess.Popen(
                argv,
                cwd=cwd or self.folder,
                env=env or jvm_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for_port(self, name: str, port: int, timeout: float = 120) -> None:
        self.wait_until(name, lambda: _listening(port), f"nothing listens on {port}", timeout)

    def wait_until(self, name: str, ready, what: str, timeout: float = 120) -> None:
        process = self.started[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {self.log(name)[-3000:]}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{name}: {what} after {timeout} s: {self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.started.values())

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.started.items()}

    def stop(self) -> None:
        for process in reversed(self.started.values()):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, 15)
                except ProcessLookupError:
                    pass
        for process in self.started.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        self.started.clear()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("localhost", port)) == 0


# One SDK worker's container: a fresh copy of the worker environment and its own semi-persistent folder, then Beam's
# boot with the arguments the engine gives (--id and the runner's endpoints). What boot prints goes to boot.log there,
# and the peak resident set of boot and the SDK harness it starts (wait4's, in KB) to peak_rss_kb.
CONTAINER = """#!{python} -S
import os, signal, subprocess, sys, tempfile
d = tempfile.mkdtemp(prefix="worker-", dir={containers!r})
subprocess.run(["cp", "-al", {env!r}, d + "/env"], check=True)
os.mkdir(d + "/tmp")
with open(d + "/command", "w") as f:
    f.write(" ".join(sys.argv[1:]))
env = dict(os.environ, PATH=d + "/env/bin:" + os.environ.get("PATH", ""), VIRTUAL_ENV=d + "/env", TMPDIR=d + "/tmp")
env["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] = "1"
with open(d + "/boot.log", "wb") as log:
    boot = subprocess.Popen([{boot!r}, "--semi_persist_dir=" + d, *sys.argv[1:]], env=env, stdout=log, stderr=log)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda number, frame: boot.send_signal(number))
while True:
    try:
        _, status, usage = os.wait4(boot.pid, 0)
        break
    except InterruptedError:
        continue
with open(d + "/peak_rss_kb", "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


CACHE_MS = 3_600_000  # an hour: longer than any job of a run
POOL_SCRIPT = Path(__file__).resolve().parent / "pool.py"
# A pool imports TensorFlow and the TFX libraries before it listens, which takes far longer on a busy machine.
POOL_START_TIMEOUT = 600


class BootedWorkers:
    """SDK workers that the engine starts itself (Beam's PROCESS environment), each through Beam's Go boot in a
    fresh container folder and a copy of the worker environment without the project: what a stock Beam SDK
    container does with a job that stages the project (--setup_file)."""

    def __init__(self, folder: Path, venv: Path = PROJECT_VENV):
        self.folder = Path(folder)
        self.venv = venv

    @property
    def work_dir(self) -> Path:
        """A folder outside the source tree, to probe the worker environment from."""
        return self.folder / "work"

    @property
    def containers(self) -> Path:
        return self.folder / "containers"

    @property
    def command(self) -> Path:
        return self.folder / "container"

    def prepare(self, boot: Path) -> None:
        """The worker environment and the container command that starts boot (engines.boot())."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(exist_ok=True)
        env_dir = self.folder / "env"
        self.python = worker_environment(env_dir, self.venv)
        leaked = [m for m in PROJECT_MODULES if importable(self.python, m, self.work_dir)]
        if leaked:
            raise RuntimeError(f"the worker environment can import the project already: {leaked}")
        self.command.write_text(
            CONTAINER.format(python=self.python, containers=str(self.containers), env=str(env_dir), boot=str(boot))
        )
        self.command.chmod(0o755)

    def started(self) -> list[Path]:
        """The container folder of every SDK worker started so far, oldest first."""
        return sorted(self.containers.glob("worker-*"), key=lambda d: d.stat().st_mtime)

    def peak_rss_mb(self) -> list[float]:
        """The peak resident set of each SDK worker that has ended (boot and the harness it ran), in MB."""
        return [int((c / "peak_rss_kb").read_text()) / 1024 for c in self.started() if (c / "peak_rss_kb").exists()]

    def beam_args(self) -> list[str]:
        """PROCESS with this command, and each TaskManager (executor) keeping its SDK workers for the job's life
        (--environment_cache_millis): without it the engines start a worker for many of a job's tasks (what that
        costs: docs/benchmarks.md, Distributed Beam).
        """
        command = json.dumps({"command": str(self.command)})
        return [
            "--environment_type=PROCESS",
            f"--environment_config={command}",
            f"--environment_cache_millis={CACHE_MS}",
        ]


class WorkerPools:
    """A worker pool per TaskManager (Spark worker), started once per cluster in the image environment
    (pipeline.runners.worker_pool, the project's own pool: Beam's in its thread mode): the engine starts each SDK
    worker through the PROCESS environment's command, pool.py, which gets it from the pool named by
    BEAM_WORKER_POOL in its TaskManager's environment. A worker is then a thread of a process that
    has imported TensorFlow and the project already, for every stage of every job of the cluster's life.
    """

    def __init__(self, folder: Path, venv: Path = PROJECT_VENV):
        self.folder = Path(folder)
        self.venv = venv
        self.ports: dict[str, int] = {}

    @property
    def command(self) -> Path:
        return self.folder / "pool-client"

    @property
    def env_dir(self) -> Path:
        return self.folder / "image"

    def prepare(self) -> None:
        """The image environment and the PROCESS command."""
        self.python = image_environment(self.env_dir, self.venv)
        self.command.write_text(f'#!/bin/sh\nexec {self.python} {POOL_SCRIPT} "$@"\n')
        self.command.chmod(0o755)

    def start(self, processes: "Processes", names: list[str]) -> None:
        """A pool for each of names (the TaskManagers), started at once, each ready before this returns."""
        for name in names:
            self.ports[name] = free_port()
            processes.start(
                f"pool-{name}",
                [str(self.python), "-m", "pipeline.runners.worker_pool", "--port", str(self.ports[name])]
                + ["--log", str(self.log(name))],
                cwd=self.folder,
            )
        for name in names:
            processes.wait_for_port(f"pool-{name}", self.ports[name], timeout=POOL_START_TIMEOUT)

    def env_of(self, name: str) -> dict:
        """What the TaskManager's environment adds: its own pool."""
        return {POOL_ENV: f"localhost:{self.ports[name]}"}

    def log(self, name: str) -> Path:
        return self.folder / f"pool-{name}.jsonl"

    def started(self) -> dict[str, list[dict]]:
        """Every worker each pool was asked to start, oldest first."""
        return {
            name: [json.loads(line) for line in self.log(name).read_text().splitlines()]
            if self.log(name).exists()
            else []
            for name in self.ports
        }

    def peak_rss_mb(self, processes: "Processes") -> dict[str, float]:
        return {name: peak_rss_mb(processes.pids()[f"pool-{name}"]) for name in self.ports}

    def beam_args(self) -> list[str]:
        """PROCESS with the pool's client as its command, workers kept for the job's life."""
        command = json.dumps({"command": str(self.command)})
        return [
            "--environment_type=PROCESS",
            f"--environment_config={command}",
            f"--environment_cache_millis={CACHE_MS}",
        ]


def jvm_env() -> dict:
    """The environment the engines' JVMs start in: this one without Python's (their workers set their own)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
