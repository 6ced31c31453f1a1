"""A finished rehearsal read back as a local run is (summary.Executed), for the finish step every runner shares."""

import json

from pipeline.runners.rehearsal.scheduler import Rehearsal, TaskResult

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
    from components.lib.rejection import DataRejectedError

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
