"""A Beam cluster on one machine, for proving that remote Beam workers get the project's code.

`LocalBeamCluster` starts, each in its own process:
- a portable job service (Beam's Python one, job_service.py): it receives the job and its staged artifacts from
  the pipeline, as a Flink or Spark job server would, and runs the job on --direct_num_workers SDK workers;
- a worker pool (`apache_beam.runners.worker.worker_pool_main`) that starts each SDK worker through boot.py,
  which installs what the job staged (as the Beam SDK container's boot does) before starting the SDK harness.

Both run in a *worker environment*: a copy of the project's virtual environment (hard links, so it costs no disk
and a second) with the project's own install taken out, so `import components` fails there until a job ships the
project. The workers therefore see only what the pipeline sends them, as on Dataflow, Flink or Spark.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOT = HERE / "boot.py"
PROJECT_VENV = HERE.parents[1] / ".venv"
# The editable install's files: a .pth hook, its finder module and the dist-info that names the project.
_PROJECT_INSTALL = ("__editable__*fraud_pipeline*", "fraud_pipeline-*.dist-info")
# Modules the project is made of; none may import in the worker environment before a job ships them.
PROJECT_MODULES = ("contract", "components", "transform", "trainer", "pipeline")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {timeout} s: {log.read_text()[-2000:]}")


def worker_environment(folder: Path, venv: Path = PROJECT_VENV) -> Path:
    """A copy of venv without the project installed; returns its python."""
    if folder.exists():
        shutil.rmtree(folder)
    try:
        subprocess.run(["cp", "-al", str(venv), str(folder)], check=True)  # hard links: instant, no disk
    except subprocess.CalledProcessError:
        shutil.copytree(venv, folder, symlinks=True)
    site_packages = next(folder.glob("lib/python3*/site-packages"))
    for pattern in _PROJECT_INSTALL:
        for path in site_packages.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / "bin" / "fraud-pipeline").unlink(missing_ok=True)
    return folder / "bin" / "python"


def importable(python: Path, module: str, cwd: Path) -> bool:
    """Whether module imports in that Python, from cwd, with nothing added to its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", f"import {module}"], cwd=cwd, env=env, capture_output=True)
    return probe.returncode == 0


class LocalBeamCluster:
    """A portable job service and an SDK worker pool in a worker environment, under folder."""

    def __init__(self, folder: Path, venv: Path = PROJECT_VENV):
        self.folder = Path(folder)
        self.venv = venv
        self.processes: list[subprocess.Popen] = []
        self.job_port = self.pool_port = 0

    def __enter__(self) -> "LocalBeamCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def work_dir(self) -> Path:
        """The workers' current directory: outside the source tree, so it is not on their path."""
        return self.folder / "work"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(exist_ok=True)
        self.python = worker_environment(self.folder / "env", self.venv)
        leaked = [m for m in PROJECT_MODULES if importable(self.python, m, self.work_dir)]
        if leaked:
            raise RuntimeError(f"the worker environment can import the project already: {leaked}")
        boot = self.folder / "boot"
        boot.write_text(f'#!/bin/sh\nexec {self.python} {BOOT} "$@"\n')
        boot.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # The pool's identity and temporary folder (boot.py keeps its staged files and install marker there).
        env["BEAM_PYTHON_WORKER_POOL_ID"] = f"{os.getpid()}-{id(self)}"
        env["TMPDIR"] = str(self.folder / "tmp")
        (self.folder / "tmp").mkdir(exist_ok=True)
        self.job_port, self.pool_port = _free_port(), _free_port()
        self._start(
            "job-service",
            [str(HERE / "job_service.py"), f"--port={self.job_port}"] + [f"--staging_dir={self.folder / 'staging'}"],
            self.job_port,
            env,
        )
        self._start(
            "worker-pool",
            ["-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={self.pool_port}"]
            + [f"--container_executable={boot}"],
            self.pool_port,
            env,
        )

    def _start(self, name: str, args: list[str], port: int, env: dict) -> None:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(self.python), *args], cwd=self.work_dir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        _wait_for(port, process, log)

    def beam_args(self, workers: int = 1) -> list[str]:
        """The pipeline's Beam arguments for a job on this cluster with that many SDK workers."""
        return [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{self.job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{self.pool_port}",
            f"--direct_num_workers={workers}",
        ]

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
