"""`fraud-pipeline rehearse`: a compiled spec run on this machine as its backend would, with no containers or cloud.

Each task runs in dependency order as its container would: the compiled command and args with the placeholders
filled, and the ExecutorInput built the way the target's backend builds it.

Kubeflow (open-source KFP, backend/src/v2 on main as read in 2026-12):
- root parameters: the run's values, else the spec's defaults (compiler/argocompiler/argo.go fills them in);
- a task's parameters: `constant` runtime values, component inputs, task outputs (driver/resolve.go), sent as
  `parameterValues` only;
- upstream artifacts: read back from ML Metadata (metadata/client.go): the name is the MLMD id, the metadata holds
  what the producer reported plus `display_name` and `store_session_info` (RecordArtifact), and the type is an
  empty instance schema (GetOutputArtifactsByExecutionId sets Schema "");
- outputs: `<root>/<pipeline>/<run id>/<task>/<uuid>/<key>` named by their key, the executor output file in the
  task root's local path (driver/driver.go provisionOutputs, component/launcher_v2.go), `{{$}}` replaced by the
  ExecutorInput JSON with the component's parameter defaults added (launcher_v2.go compileCmdAndArgs);
- after the task, its executor output's URIs and metadata are merged into its outputs (mergeRuntimeArtifacts), and
  the first failure ends the run (Argo's DAG fails fast).
Vertex AI: the legacy invocation as TFX's own test data has it (kubeflow/v2/container/testdata/
executor_invocation_legacy.json): `parameters` beside `parameterValues`, input artifacts with full resource names
and their types' instance schemas.

What is mapped, and said when it is: an object-store URI (gs://B/P, s3://B/P) becomes ROOT/gcs/B/P (ROOT/s3/B/P),
as KFP's launcher mounts gs:// at /gcs/; the image's /pipeline/ becomes this checkout (the Dockerfile's WORKDIR);
`python` becomes this environment's interpreter, with the image's ENV; Dataflow's Beam arguments are dropped, so the
Beam components run on the direct runner. A portable runner's cluster arguments are refused: nothing here runs one
for a rehearsal (`fraud-pipeline run --beam-arg=...` does).
"""

import concurrent.futures
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pipeline.runners.spec_config import beam_args as compiled_beam_args
from pipeline.runners.spec_io import pipeline_spec

KUBEFLOW, VERTEX = "kubeflow", "vertex"
# The image's ENV (Dockerfile): TFX 1.16 and TF Transform run on Keras 2.
IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
IMAGE_PROJECT_DIR = "/pipeline/"
_SCHEMES = {"gs://": "gcs", "s3://": "s3"}
_URI = re.compile(r"\b(gs|s3)://")
_IMAGE_PATH = re.compile(r"(?<![\w./-])/pipeline/")
# Beam arguments that only mean something on Dataflow: dropped with --runner=DataflowRunner.
DATAFLOW_ONLY = (
    "--runner",
    "--project",
    "--region",
    "--temp_location",
    "--staging_location",
    "--sdk_container_image",
    "--service_account_email",
    "--network",
    "--subnetwork",
    "--machine_type",
    "--worker_machine_type",
    "--num_workers",
    "--max_num_workers",
    "--autoscaling_algorithm",
    "--dataflow_service_options",
    "--experiments",
    "--setup_file",
    "--job_server_timeout",
)
# Vertex AI's resource names, as in TFX's test data.
_VERTEX_PROJECT = "projects/123456789/locations/local/metadataStores/default/artifacts"


class RehearsalError(Exception):
    """The spec cannot be rehearsed here; the message says why and what to do."""


@dataclasses.dataclass
class Mapping:
    """How the cloud and the image are laid onto this machine."""

    root: Path
    checkout: Path
    python: str = sys.executable

    def text(self, value: str) -> str:
        """Any string the spec hands a task, with object-store URIs and image paths made local."""
        value = _URI.sub(lambda m: f"{self.root}/{_SCHEMES[m.group(0)]}/", value)
        return _IMAGE_PATH.sub(f"{self.checkout}/", value)

    def value(self, value):
        """A parameter value (a JSON value) with its strings mapped."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def map_beam_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(the Beam arguments a local task gets, the ones dropped): Dataflow's are dropped (the direct runner runs
    the job); a portable runner's cluster is refused."""
    runner = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "")
    if runner.lower().removesuffix("runner") in ("flink", "spark", "portable", "prism"):
        raise RehearsalError(
            f"the spec runs Beam on {runner}, a cluster this rehearsal does not start; compile the spec without "
            "--beam-arg=--runner=... to rehearse it (a local portable cluster is proven by `fraud-pipeline run`)"
        )
    if runner.lower().removesuffix("runner") != "dataflow":
        return list(args), []
    kept = [a for a in args if a.split("=", 1)[0] not in DATAFLOW_ONLY]
    return kept, [a for a in args if a not in kept]


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


def target_of(spec: dict) -> str:
    """'vertex' for a PipelineJob (schema 2.0), 'kubeflow' for a bare schema 2.1 spec."""
    return VERTEX if "pipelineSpec" in spec else KUBEFLOW


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


def _legacy(value) -> dict:
    """A JSON value as a schema 2.0 Value (stringValue / intValue / doubleValue)."""
    if isinstance(value, bool):
        return {"intValue": str(int(value))}
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return {"intValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def _from_legacy(value: dict):
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    return value.get("stringValue", "")


def root_parameters(spec: dict, given: dict) -> dict:
    """The run's root parameters: the given values, else the PipelineJob's runtime values, else the spec's defaults.

    Raises:
      RehearsalError: a given name the pipeline does not declare, or a required parameter without a value.
    """
    declared = pipeline_spec(spec)["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RehearsalError(f"--param {unknown[0]}: the pipeline declares no such parameter ({', '.join(declared)})")
    runtime = spec.get("runtimeConfig", {})
    values = {k: _from_legacy(v) for k, v in runtime.get("parameters", {}).items()}
    values.update(runtime.get("parameterValues", {}))
    out = {}
    for name, definition in declared.items():
        if name in given:
            out[name] = given[name]
        elif name in values:
            out[name] = values[name]
        elif "defaultValue" in definition:
            out[name] = definition["defaultValue"]
        elif not definition.get("isOptional"):
            raise RehearsalError(f"the pipeline parameter {name} has no value: give --param {name}=VALUE")
    return out


def _kfp_metadata_roundtrip(metadata: dict, output_name: str) -> dict:
    """An output artifact's metadata as the next task reads it back from KFP's ML Metadata: each value becomes a
    custom property (numbers as doubles, booleans as integers, lists and structs wrapped), and the launcher adds
    display_name and store_session_info (metadata/converter.go toMLMDArtifact, toRuntimeArtifact)."""
    out = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            out[key] = float(int(value))
        elif isinstance(value, list):
            out[key] = {"list": value}
        elif isinstance(value, dict):
            out[key] = {"struct": value}
        else:
            out[key] = value
    out.setdefault("display_name", output_name)
    out.setdefault("store_session_info", json.dumps({"Provider": "gs", "Params": {"fromEnv": "true"}}))
    return out


class _Runner:
    """One rehearsal's state: ids handed out, each task's recorded outputs."""

    def __init__(self, spec: dict, mapping: Mapping, params: dict, say: Callable[[str], None]):
        self.spec, self.body, self.mapping, self.say = spec, pipeline_spec(spec), mapping, say
        self.target = target_of(spec)
        self.params = {k: mapping.value(v) for k, v in params.items()}
        self.run_id = (
            uuid.uuid4().hex
            if self.target == KUBEFLOW
            else f"{self.body['pipelineInfo']['name']}-{datetime.datetime.now():%Y%m%d%H%M%S}"
        )
        compiled_root = (
            spec.get("runtimeConfig", {}).get("gcsOutputDirectory")
            if self.target == VERTEX
            else self.body.get("defaultPipelineRoot")
        )
        if not compiled_root:
            raise RehearsalError("the spec names no pipeline root (compile it with fraud-pipeline compile)")
        self.compiled_root = compiled_root
        self.pipeline_root = mapping.text(compiled_root)
        self.next_id = 1
        self.recorded: dict[str, dict] = {}  # task -> output key -> runtime artifact (as the next task gets it)
        self.output_parameters: dict[str, dict] = {}
        self.mapped: list[str] = []
        for scheme, folder in _SCHEMES.items():
            if scheme in json.dumps(spec):
                self.note(f"{scheme} -> {mapping.root}/{folder}/ (as KFP's launcher mounts gs:// at /gcs/)")
        if IMAGE_PROJECT_DIR in json.dumps(spec):
            self.note(f"the image's {IMAGE_PROJECT_DIR} -> {mapping.checkout}/ (the Dockerfile's WORKDIR)")
        self.note(f"python -> {mapping.python}, with the image's ENV {IMAGE_ENV}")

    def note(self, line: str) -> None:
        """Says a mapping once, when it is first made."""
        if line not in self.mapped:
            self.mapped.append(line)
            self.say(f"mapped: {line}")

    def _task_root(self, task: str, salt: str) -> str:
        if self.target == KUBEFLOW:
            return f"{self.pipeline_root.rstrip('/')}/{self.body['pipelineInfo']['name']}/{self.run_id}/{task}/{salt}"
        return f"{self.pipeline_root.rstrip('/')}/123456789/{self.run_id}/{task}_{salt}"

    def _parameters(self, task: dict) -> dict:
        out = {}
        for name, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                out[name] = self.params[value["componentInputParameter"]]
            elif "runtimeValue" in value:
                runtime = value["runtimeValue"]
                raw = runtime["constant"] if "constant" in runtime else _from_legacy(runtime["constantValue"])
                out[name] = self.mapping.value(raw)
            elif "taskOutputParameter" in value:
                ref = value["taskOutputParameter"]
                out[name] = self.output_parameters[ref["producerTask"]][ref["outputParameterKey"]]
            else:
                raise RehearsalError(f"parameter {name}: {', '.join(value)} is not rehearsed")
        return out

    def _input_artifacts(self, task: dict) -> dict:
        out = {}
        for name, value in task.get("inputs", {}).get("artifacts", {}).items():
            ref = value.get("taskOutputArtifact")
            if ref is None:
                raise RehearsalError(f"artifact {name}: {', '.join(value)} is not rehearsed")
            out[name] = {"artifacts": [self.recorded[ref["producerTask"]][ref["outputArtifactKey"]]]}
        return out

    def _output_artifacts(self, component: dict, task_root: str) -> dict:
        out = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            artifact = {"uri": f"{task_root}/{key}", "type": definition["artifactType"]}
            if self.target == KUBEFLOW:
                artifact["name"] = key
                if definition.get("metadata"):
                    artifact["metadata"] = definition["metadata"]
            else:
                artifact["name"] = f"{_VERTEX_PROJECT}/{self._new_id()}"
            out[key] = {"artifacts": [artifact]}
        return out

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def executor_input(self, name: str, task: dict, component: dict) -> tuple[dict, str]:
        """The ExecutorInput this task gets, and its executor output file."""
        salt = uuid.uuid4().hex[:12]
        task_root = self._task_root(name, salt)
        params = self._parameters(task)
        inputs = {"artifacts": self._input_artifacts(task)}
        if self.target == KUBEFLOW:
            # launcher_v2.go addDefaultParams: the component's defaults for parameters the task does not set.
            for pname, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
                if pname not in params and "defaultValue" in definition:
                    params[pname] = definition["defaultValue"]
            inputs["parameterValues"] = params
            output_file = f"{task_root}/output_metadata.json"
        else:
            inputs["parameterValues"] = params
            inputs["parameters"] = {k: _legacy(v) for k, v in params.items()}
            output_file = f"{task_root}/executor_output.json"
        outputs = {"artifacts": self._output_artifacts(component, task_root), "outputFile": output_file}
        return {"inputs": inputs, "outputs": outputs}, output_file

    def command(self, executor: dict, executor_input: dict) -> list[str]:
        """The container's command and args with placeholders filled, the Beam args mapped, python made local."""
        container = executor["container"]
        if container.get("lifecycle"):
            raise RehearsalError(
                f"the container has a lifecycle hook ({', '.join(container['lifecycle'])}), which no backend here runs"
            )
        fixed, beam = [], compiled_beam_args(container.get("args", []))
        for arg in container.get("args", [])[: len(container.get("args", [])) - len(beam)]:
            fixed.append(arg)
        kept, dropped = map_beam_args([self.mapping.text(a) for a in beam])
        for arg in dropped:
            self.note(f"Beam argument {arg}: dropped (Dataflow only; the direct runner runs the job)")
        placeholders = {"{{$}}": json.dumps(executor_input)}
        for key, artifacts in executor_input["outputs"]["artifacts"].items():
            placeholders[f"{{{{$.outputs.artifacts['{key}'].uri}}}}"] = artifacts["artifacts"][0]["uri"]
            placeholders[f"{{{{$.outputs.artifacts['{key}'].path}}}}"] = artifacts["artifacts"][0]["uri"]
        for key, artifacts in executor_input["inputs"]["artifacts"].items():
            placeholders[f"{{{{$.inputs.artifacts['{key}'].uri}}}}"] = artifacts["artifacts"][0]["uri"]
            placeholders[f"{{{{$.inputs.artifacts['{key}'].path}}}}"] = artifacts["artifacts"][0]["uri"]
        for key, value in executor_input["inputs"]["parameterValues"].items():
            text = value if isinstance(value, str) else json.dumps(value)
            placeholders[f"{{{{$.inputs.parameters['{key}']}}}}"] = text

        def fill(arg: str) -> str:
            for placeholder, value in placeholders.items():
                arg = arg.replace(placeholder, value)
            return arg

        command = [self.mapping.python if c == "python" else c for c in container.get("command", [])]
        return [*(fill(c) for c in command), *(fill(a) for a in fixed + kept)]

    def record(self, name: str, executor_input: dict, output_file: str) -> dict:
        """Merges the executor output into the task's outputs and records them as the next task will get them."""
        reported = {}
        if os.path.exists(output_file):
            reported = json.loads(Path(output_file).read_text())
        self.output_parameters[name] = reported.get("parameterValues", {})
        recorded = {}
        for key, artifacts in executor_input["outputs"]["artifacts"].items():
            artifact = dict(artifacts["artifacts"][0])
            report = (reported.get("artifacts", {}).get(key, {}).get("artifacts") or [{}])[0]
            if report.get("uri"):
                artifact["uri"] = report["uri"]
            metadata = {**artifact.get("metadata", {}), **report.get("metadata", {})}
            if self.target == KUBEFLOW:
                recorded[key] = {
                    "name": str(self._new_id()),
                    "uri": artifact["uri"],
                    "type": {"instanceSchema": ""},
                    "metadata": _kfp_metadata_roundtrip(metadata, key),
                }
            else:
                recorded[key] = {**artifact, "metadata": metadata}
        self.recorded[name] = recorded
        return recorded


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
    body = runner.body
    tasks = body["root"]["dag"]["tasks"]
    for name in order(tasks):  # refuses what cannot run before anything starts
        label = body["components"][tasks[name]["componentRef"]["name"]]["executorLabel"]
        if "container" not in body["deploymentSpec"]["executors"][label]:
            kinds = ", ".join(body["deploymentSpec"]["executors"][label])
            raise RehearsalError(f"task {name}: a {kinds} executor, which the rehearsal does not run")
    logs = root / "logs" / runner.run_id
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, TaskResult] = {}
    started = datetime.datetime.now(datetime.timezone.utc)
    lock = threading.Lock()

    def prepare(name: str) -> tuple:
        task = tasks[name]
        component = body["components"][task["componentRef"]["name"]]
        executor = body["deploymentSpec"]["executors"][component["executorLabel"]]
        with lock:
            executor_input, output_file = runner.executor_input(name, task, component)
            command = runner.command(executor, executor_input)
        env = {**os.environ, **IMAGE_ENV}
        env.update({e["name"]: mapping.text(e.get("value", "")) for e in executor["container"].get("env", [])})
        return executor_input, output_file, command, env

    def execute(name: str, prepared: tuple) -> TaskResult:
        executor_input, output_file, command, env = prepared
        log = logs / f"{name}.log"
        clock = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=checkout, env=env)
        seconds = round(time.monotonic() - clock, 1)
        result = TaskResult(name, "COMPLETE", seconds, command, str(log), inputs=executor_input["inputs"]["artifacts"])
        if proc.returncode != 0:
            result.state, result.error = "FAILED", _last_error(log)
        else:
            with lock:
                result.outputs = runner.record(name, executor_input, output_file)
        return result

    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        running: dict = {}
        while True:
            done_names = {n for n, r in results.items() if r.state == "COMPLETE"}
            if not failed:
                ready = [
                    n
                    for n in order(tasks)
                    if n not in results
                    and n not in running.values()
                    and set(tasks[n].get("dependentTasks", [])) <= done_names
                ]
                for name in ready[: max(0, parallel - len(running))]:
                    running[pool.submit(execute, name, prepare(name))] = name
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                results[running.pop(future)] = result
                failed = failed or result.state == "FAILED"
                say(
                    f"{result.name}: {result.state.lower()} ({result.seconds} s)"
                    + (f": {result.error}" if result.error else "")
                )
    ordered = OrderedDict((n, results.get(n, TaskResult(n, "NOT_RUN"))) for n in order(tasks))
    return Rehearsal(runner.target, runner.run_id, runner.pipeline_root, runner.params, ordered, runner.mapped, started)


def _last_error(log: Path) -> str:
    """The last line of a failed task's log that names an exception, for the one-line message."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:500]


_TFX_PROPERTIES = ("split_names", "span", "version")


def _mlmd_artifact(artifact: dict):
    """A rehearsed artifact as an ML Metadata Artifact, its metadata read as TFX reads it (an integral number as an
    int, TFX's own properties as properties), so the run's results are read by the same code as a local run's."""
    from ml_metadata.proto import metadata_store_pb2

    out = metadata_store_pb2.Artifact(uri=artifact["uri"])
    for key, value in artifact.get("metadata", {}).items():
        target = out.properties if key in _TFX_PROPERTIES else out.custom_properties
        if isinstance(value, str):
            target[key].string_value = value
        elif isinstance(value, (int, float)) and float(value).is_integer():
            target[key].int_value = int(value)
        elif isinstance(value, float):
            target[key].double_value = value
        else:
            target[key].string_value = json.dumps(value)
    return out


def _error(result: TaskResult) -> BaseException:
    """The failed task's error as the local run's verdict reads it (a data rejection stays one)."""
    from components.rejection import DataRejectedError

    if "DataRejectedError" in result.error:
        return DataRejectedError(result.error.split(":", 1)[1].strip())
    return RuntimeError(f"{result.error} (log: {result.log})")


def executed(rehearsal: Rehearsal):
    """The rehearsal as summary.Executed: the tasks that ran, with their artifacts, as a local run's nodes."""
    from pipeline.results.metadata import NodeRun
    from pipeline.results.summary import Executed

    nodes, error = {}, None
    for name, result in rehearsal.tasks.items():
        if result.state == "NOT_RUN":
            continue
        nodes[name] = NodeRun(
            node_id=name,
            run_id=rehearsal.run_id,
            state=result.state,
            inputs={k: [_mlmd_artifact(a) for a in v["artifacts"]] for k, v in result.inputs.items()},
            outputs={k: [_mlmd_artifact(a)] for k, a in result.outputs.items()},
        )
        if result.state == "FAILED":
            error = _error(result)
    return Executed(
        error=error,
        nodes=nodes,
        run_id=rehearsal.run_id,
        seconds={n: r.seconds for n, r in rehearsal.tasks.items() if r.state != "NOT_RUN"},
        started=rehearsal.started,
    )
