"""The command of every task in a compiled spec: TFX's Kubeflow V2 entrypoint, with input artifact types filled in.

The open-source Kubeflow Pipelines driver hands a task its upstream artifacts with an empty type: it reads them back
from ML Metadata with `Schema: ""` (backend/src/v2/metadata/client.go, GetOutputArtifactsByExecutionId: "TODO(Bobgy):
figure out how to get schema"), while TFX's entrypoint imports each input artifact's class from its type's title and
fails on an empty one. The compiled args carry every input's type in --json_serialized_inputs_spec_args (pipeline
spec schema 2.1), so this fills the missing types from there and then runs TFX's entrypoint unchanged. Vertex AI
sends the types itself; there nothing changes.

    python -m pipeline.runners.container_entrypoint --executor_class_path ... --json_serialized_invocation_args ...
"""

import functools

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from compat import importlib_metadata
from compat import tfx as tfx_compat
from pipeline.definition import beam_workers, startup

# The compiled container command, as KubeflowV2DagRunnerConfig(default_commands=...) takes it.
COMMAND = ["python", "-m", "pipeline.runners.container_entrypoint"]


def fill_input_types(invocation: str, inputs_spec: str | None) -> str:
    """The ExecutorInput JSON with each input artifact's type taken from the inputs spec where it is empty.

    Args:
      invocation: the ExecutorInput as JSON (--json_serialized_invocation_args).
      inputs_spec: the task's ComponentInputsSpec as JSON (--json_serialized_inputs_spec_args), or None.
    """
    if not inputs_spec:
        return invocation
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(invocation, executor_input, ignore_unknown_fields=True)
    spec = pipeline_spec_pb2.ComponentInputsSpec()
    json_format.Parse(inputs_spec, spec, ignore_unknown_fields=True)
    changed = False
    for name, artifacts in executor_input.inputs.artifacts.items():
        declared = spec.artifacts.get(name)
        if declared is None:
            continue
        for artifact in artifacts.artifacts:
            kind = artifact.type.WhichOneof("kind")
            if kind is None or not getattr(artifact.type, kind):
                artifact.type.CopyFrom(declared.artifact_type)
                changed = True
    return json_format.MessageToJson(executor_input) if changed else invocation


def main(parsed_argv) -> None:
    args, beam_args = parsed_argv
    args.json_serialized_invocation_args = fill_input_types(
        args.json_serialized_invocation_args, getattr(args, "json_serialized_inputs_spec_args", None)
    )
    beam_workers.no_tfx_package()
    tfx_entrypoint().main((args, beam_args))


@functools.cache
def tfx_entrypoint():
    """TFX's Kubeflow V2 entrypoint module, its stack (TensorFlow, Beam, TFX) imported as the CLI imports it
    (pipeline/definition/startup.py), once: each task is a fresh process that pays that import."""
    importlib_metadata.scan_installed_distributions_once()
    with startup.heavy_imports():
        from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    return kubeflow_v2_run_executor


if __name__ == "__main__":
    # TFX's own flag parser: the compiled args are TFX's, so they must parse the same way (compat/tfx.py).
    tfx_compat.run_kfp_entrypoint(main, tfx_entrypoint())
