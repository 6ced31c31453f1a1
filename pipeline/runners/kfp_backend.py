"""What the open-source Kubeflow Pipelines backend cannot run in a compiled spec: a walk that names each construct.

It mirrors kubeflow/pipelines' v2 backend (github.com/kubeflow/pipelines, backend/src/v2, read on main in 2026-12):
- compiler/argocompiler/dag.go compiles container and importer executors only: a `resolver` executor fails with
  "resolver executors not implemented", a `customJob` with "custom job executors is Google Cloud only", and an
  importer task may not carry a trigger condition;
- driver/resolve.go reads a task's runtime parameter value only as `constant` (schema 2.1): the deprecated
  `constantValue` of schema 2.0 falls into "param runtime value spec of type ... not implemented"; it resolves
  parameters from component inputs, task outputs, runtime values and final statuses, artifacts from component
  inputs and task outputs, and refuses artifact iterators ("artifact iterator not implemented yet");
- driver/resolve.go checks each parameter against its `parameterType`, so a legacy `type` (schema 2.0) without one
  fails as a type mismatch;
- driver/container.go and component/launcher_v2.go run a container's command and args, nothing else: no
  `lifecycle` hook (TFX compiles its FileBasedExampleGen driver as preCacheCheck) ever runs.
No network and no KFP code here: the spec is read as a dict (JSON or YAML, camelCase keys).
"""

_PARAMETER_KINDS = ("componentInputParameter", "taskOutputParameter", "runtimeValue", "taskFinalStatus")
_ARTIFACT_KINDS = ("componentInputArtifact", "taskOutputArtifact")
_EXECUTOR_KINDS = ("container", "importer")
_EXECUTOR_REFUSALS = {
    "resolver": "a resolver executor (the backend: 'resolver executors not implemented')",
    "customJob": "a customJob executor (the backend: 'custom job executors is Google Cloud only')",
}


def _tasks(component: dict) -> dict:
    return component.get("dag", {}).get("tasks", {})


def _components(spec: dict) -> dict:
    """Component name -> its spec, the root included (as 'root')."""
    return {"root": spec.get("root", {}), **spec.get("components", {})}


def _parameter_problems(where: str, parameters: dict) -> list[str]:
    found = []
    for name, value in parameters.items():
        if not any(k in _PARAMETER_KINDS for k in value):
            given = ", ".join(value) or "nothing"
            found.append(f"{where}: parameter {name} is given as {given}, which the driver does not resolve")
            continue
        runtime = value.get("runtimeValue")
        if runtime is not None and "constant" not in runtime:
            found.append(
                f"{where}: parameter {name} is a {', '.join(runtime) or 'empty'} runtime value; the driver reads "
                "only 'constant' (compile with pipeline spec schema 2.1)"
            )
    return found


def _definition_problems(where: str, definitions: dict) -> list[str]:
    return [
        f"{where}: parameter {name} has no parameterType (a schema 2.0 'type'), which the driver's type check refuses"
        for name, parameter in definitions.get("parameters", {}).items()
        if "parameterType" not in parameter
    ]


def problems(spec: dict) -> list[str]:
    """One sentence per construct of a compiled PipelineSpec the open-source backend does not implement.

    Args:
      spec: the PipelineSpec (a Vertex PipelineJob's `pipelineSpec`, or a bare spec) as a dict.

    Returns:
      The problems, each naming the task, executor or component; empty when the backend can run the spec.
    """
    found = []
    for name, component in _components(spec).items():
        found += _definition_problems(f"component {name} inputs", component.get("inputDefinitions", {}))
        for task_name, task in _tasks(component).items():
            where = f"task {task_name}"
            inputs = task.get("inputs", {})
            found += _parameter_problems(where, inputs.get("parameters", {}))
            for artifact, value in inputs.get("artifacts", {}).items():
                if not any(k in _ARTIFACT_KINDS for k in value):
                    found.append(f"{where}: artifact {artifact} is given as {', '.join(value)}, not implemented")
            if "artifactIterator" in task:
                found.append(f"{where}: an artifact iterator (the backend: 'artifact iterator not implemented yet')")
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    conditioned = {
        task.get("componentRef", {}).get("name"): task_name
        for component in _components(spec).values()
        for task_name, task in _tasks(component).items()
        if task.get("triggerPolicy", {}).get("condition")
    }
    for label, executor in executors.items():
        kinds = [k for k in executor if k in _EXECUTOR_KINDS or k in _EXECUTOR_REFUSALS]
        for kind in kinds:
            if kind in _EXECUTOR_REFUSALS:
                found.append(f"executor {label}: {_EXECUTOR_REFUSALS[kind]}")
        if not kinds:
            found.append(f"executor {label}: of kind {', '.join(executor)}, which the backend does not compile")
        container = executor.get("container", {})
        for hook in container.get("lifecycle", {}):
            found.append(f"executor {label}: a lifecycle.{hook} hook, which nothing in the backend runs")
        if "importer" in executor:
            for component, task_name in conditioned.items():
                if component and label.startswith(component):
                    found.append(f"task {task_name}: an importer with a trigger condition, which the backend refuses")
    return found


class UnsupportedSpecError(ValueError):
    """A compiled spec uses what the open-source Kubeflow Pipelines backend does not implement."""


def check(spec: dict) -> None:
    """Raises UnsupportedSpecError naming every problem, when there is one."""
    found = problems(spec)
    if found:
        more = f" (and {len(found) - _SHOWN} more)" if len(found) > _SHOWN else ""
        raise UnsupportedSpecError(
            "the open-source Kubeflow Pipelines backend cannot run this spec: " + "; ".join(found[:_SHOWN]) + more
        )


# A spec compiled for another target can hold dozens of problems; the first few say enough.
_SHOWN = 5
