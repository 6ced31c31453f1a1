"""What a backend's driver gives each task: the root parameters, each task's ExecutorInput (parameters, upstream
artifacts as ML Metadata hands them back, output URIs) and its command line, and the outputs it reports."""

import datetime
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from pipeline.runners.rehearsal.mapping import (
    _SCHEMES,
    IMAGE_ENV,
    IMAGE_PROJECT_DIR,
    Mapping,
    RehearsalError,
    map_beam_args,
)
from pipeline.runners.spec_config import beam_args as compiled_beam_args
from pipeline.runners.spec_io import pipeline_spec

KUBEFLOW, VERTEX = "kubeflow", "vertex"
_VERTEX_PROJECT = "projects/123456789/locations/local/metadataStores/default/artifacts"


def target_of(spec: dict) -> str:
    """'vertex' for a PipelineJob (schema 2.0), 'kubeflow' for a bare schema 2.1 spec."""
    return VERTEX if "pipelineSpec" in spec else KUBEFLOW


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
