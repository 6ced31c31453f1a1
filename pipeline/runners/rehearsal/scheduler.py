"""The scheduler: the tasks of a compiled spec in dependency order, at most `parallel` at once, until one fails
(as Argo runs a DAG)."""

import concurrent.futures
import dataclasses
import datetime
import os
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pipeline.runners.rehearsal.driver import _Runner, root_parameters
from pipeline.runners.rehearsal.mapping import IMAGE_ENV, Mapping, RehearsalError


@dataclasses.dataclass
class TaskResult:
    """One task of the rehearsal: its state (COMPLETE, FAILED, NOT_RUN), seconds, command, log and artifacts."""

    name: str
    state: str
    seconds: float = 0.0
    command: list[str] = dataclasses.field(default_factory=list)
    log: str = ""
    # key -> runtime artifact as the task was given it (inputs) or reported it (outputs), JSON dicts.
    inputs: dict = dataclasses.field(default_factory=dict)
    outputs: dict = dataclasses.field(default_factory=dict)
    error: str = ""


@dataclasses.dataclass
class Rehearsal:
    """A finished rehearsal: the target, run id, root parameters, each task's result, and what was mapped."""

    target: str
    run_id: str
    pipeline_root: str
    parameters: dict
    tasks: "OrderedDict[str, TaskResult]"
    mapped: list[str]
    started: datetime.datetime


def order(tasks: dict) -> list[str]:
    """Task names in dependency order (ties by name, so a rehearsal always runs in the same order)."""
    done, out = set(), []
    while len(out) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and set(t.get("dependentTasks", [])) <= done)
        if not ready:
            raise RehearsalError(f"the tasks {sorted(set(tasks) - done)} depend on each other in a cycle")
        out.append(ready[0])
        done.add(ready[0])
    return out


def _refuse_what_cannot_run(body: dict, tasks: dict) -> None:
    """Refuses a task the rehearsal cannot run (an executor that is not a container) before anything starts."""
    for name in order(tasks):
        label = body["components"][tasks[name]["componentRef"]["name"]]["executorLabel"]
        if "container" not in body["deploymentSpec"]["executors"][label]:
            kinds = ", ".join(body["deploymentSpec"]["executors"][label])
            raise RehearsalError(f"task {name}: a {kinds} executor, which the rehearsal does not run")


class _Scheduler:
    """Runs a driver's tasks as Argo runs a DAG: each task whose upstream tasks are done starts, at most `parallel`
    at once; after a failure no new task starts, and the ones running finish."""

    def __init__(self, runner: _Runner, mapping: Mapping, logs: Path, checkout: Path, say: Callable[[str], None]):
        self.runner, self.mapping, self.logs, self.checkout, self.say = runner, mapping, logs, checkout, say
        self.tasks = runner.body["root"]["dag"]["tasks"]
        self.results: dict[str, TaskResult] = {}
        # The driver's state (ids, recorded outputs) is shared by the tasks' threads.
        self.lock = threading.Lock()

    def prepare(self, name: str) -> tuple:
        """The task's ExecutorInput, executor output file, command line and environment, as the driver makes them."""
        body = self.runner.body
        task = self.tasks[name]
        component = body["components"][task["componentRef"]["name"]]
        executor = body["deploymentSpec"]["executors"][component["executorLabel"]]
        with self.lock:
            executor_input, output_file = self.runner.executor_input(name, task, component)
            command = self.runner.command(executor, executor_input)
        env = {**os.environ, **IMAGE_ENV}
        env.update({e["name"]: self.mapping.text(e.get("value", "")) for e in executor["container"].get("env", [])})
        return executor_input, output_file, command, env

    def execute(self, name: str, prepared: tuple) -> TaskResult:
        """Runs one task's command as its container would, and records its outputs as the driver does."""
        executor_input, output_file, command, env = prepared
        log = self.logs / f"{name}.log"
        clock = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.checkout, env=env)
        seconds = round(time.monotonic() - clock, 1)
        result = TaskResult(name, "COMPLETE", seconds, command, str(log), inputs=executor_input["inputs"]["artifacts"])
        if proc.returncode != 0:
            result.state, result.error = "FAILED", _last_error(log)
        else:
            with self.lock:
                result.outputs = self.runner.record(name, executor_input, output_file)
        return result

    def _ready(self, running: dict) -> list[str]:
        done = {n for n, r in self.results.items() if r.state == "COMPLETE"}
        return [
            n
            for n in order(self.tasks)
            if n not in self.results
            and n not in running.values()
            and set(self.tasks[n].get("dependentTasks", [])) <= done
        ]

    def run(self, parallel: int) -> "OrderedDict[str, TaskResult]":
        """Every task's result in dependency order (NOT_RUN for those a failure kept from starting)."""
        failed = False
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            running: dict = {}
            while True:
                if not failed:
                    for name in self._ready(running)[: max(0, parallel - len(running))]:
                        running[pool.submit(self.execute, name, self.prepare(name))] = name
                if not running:
                    break
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    self.results[running.pop(future)] = result
                    failed = failed or result.state == "FAILED"
                    error = f": {result.error}" if result.error else ""
                    self.say(f"{result.name}: {result.state.lower()} ({result.seconds} s){error}")
        return OrderedDict((n, self.results.get(n, TaskResult(n, "NOT_RUN"))) for n in order(self.tasks))


def rehearse(
    spec: dict,
    root: Path,
    checkout: Path,
    params: dict | None = None,
    say: Callable[[str], None] = print,
    python: str = sys.executable,
    parallel: int = 2,
) -> Rehearsal:
    """Runs the tasks of a compiled spec on this machine in dependency order, until one fails.

    As Argo does, every task whose upstream tasks are done starts (at most `parallel` at once), and after a failure
    no new task starts; the ones running finish.

    Args:
      spec: the compiled spec (a Vertex PipelineJob or a Kubeflow PipelineSpec) as a dict.
      root: the local folder that stands for the object store (ROOT/gcs/...) and holds the task logs.
      checkout: the project's source tree, which stands for the image's /pipeline/.
      params: root parameter values given for this run (as `submit --param`).
      say: where a line per task goes.
      python: the interpreter that stands for the image's `python`.
      parallel: how many tasks run at once at most.
    """
    mapping = Mapping(root=root, checkout=checkout, python=python)
    runner = _Runner(spec, mapping, root_parameters(spec, params or {}), say)
    _refuse_what_cannot_run(runner.body, runner.body["root"]["dag"]["tasks"])
    logs = root / "logs" / runner.run_id
    logs.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    tasks = _Scheduler(runner, mapping, logs, checkout, say).run(parallel)
    return Rehearsal(runner.target, runner.run_id, runner.pipeline_root, runner.params, tasks, runner.mapped, started)


def _last_error(log: Path) -> str:
    """The last line of a failed task's log that names an exception, for the one-line message."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:500]
