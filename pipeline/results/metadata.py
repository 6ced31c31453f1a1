"""Reads what a local run did from its ML Metadata store: each component's state and output artifacts."""

import dataclasses
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.definition import metadata

_STATES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class NodeRun:
    """One component's execution in a pipeline run.

    Attributes:
      node_id: the component id.
      run_id: the pipeline run it belongs to (the name of its MLMD pipeline_run context).
      state: the MLMD execution state name: COMPLETE, CACHED, FAILED, RUNNING, ...
      inputs: input key -> the artifacts it read.
      outputs: output key -> the artifacts it produced (or reused, when cached).
    """

    node_id: str
    run_id: str
    state: str
    inputs: dict[str, list[metadata_store_pb2.Artifact]]
    outputs: dict[str, list[metadata_store_pb2.Artifact]]

    def output_uri(self, key: str) -> str:
        """The URI of the single artifact under an output key."""
        return self.outputs[key][0].uri


# A shared server's store, opened once a process (a connection costs a password exchange and MLMD's schema check).
_SERVERS: dict[str, metadata_store.MetadataStore] = {}


def open_store(where: str) -> metadata_store.MetadataStore:
    """Opens an existing ML Metadata store read-write: the SQLite file, or a shared server's URL
    (pipeline/definition/metadata.py), kept open for the process's next calls."""
    if not metadata.is_server(where):
        return metadata_store.MetadataStore(metadata.connection_config(where, create=False))
    if where not in _SERVERS:
        _SERVERS[where] = metadata_store.MetadataStore(metadata.connection_config(where, create=False))
    return _SERVERS[where]


def run_nodes(metadata_path: str, pipeline_name: str, run_id: str) -> dict[str, NodeRun]:
    """The executions of one pipeline run, by component id.

    The run is named, not taken as the newest: two runs writing to one store at once would otherwise read each
    other's (unfinished) executions.

    Args:
      metadata_path: the ML Metadata store (open_store's).
      pipeline_name: the pipeline the run belongs to.
      run_id: the run's id (the name of its MLMD pipeline_run context).

    Returns:
      Component id -> NodeRun, for every component that started in that run; empty when none did.
    """
    store = open_store(metadata_path)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        return {}
    in_run = {e.id: e for e in store.get_executions_by_context(run.id)}
    prefix = pipeline_name + "."
    result = {}
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
        if not executions:
            continue
        execution = max(executions, key=lambda e: e.id)
        result[node.name[len(prefix) :]] = NodeRun(
            node_id=node.name[len(prefix) :],
            run_id=run.name,
            state=_STATES.get(execution.last_known_state, "UNKNOWN"),
            inputs=_artifacts(store, execution.id, (metadata_store_pb2.Event.INPUT,)),
            outputs=_artifacts(
                store, execution.id, (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
            ),
        )
    return result


# The custom properties a run's pipeline_run context gets once it ends: where it ran (a shared store holds the runs
# of several output folders and machines).
OUTPUT_PROPERTY, HOST_PROPERTY = "fraud_pipeline_output", "fraud_pipeline_host"


def mark_run(where: str, run_id: str, output_dir: str, host: str) -> None:
    """Writes where a run ran (its output folder, its machine) on its pipeline_run context."""
    store = open_store(where)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        return
    run.custom_properties[OUTPUT_PROPERTY].string_value = output_dir
    run.custom_properties[HOST_PROPERTY].string_value = host
    store.put_contexts([run])


def pipeline_runs(where: str, pipeline_name: str) -> dict[str, dict]:
    """run id -> {"created_ms", "nodes": {component: state}, "output", "host"} for every run of a pipeline in a
    store, read with one query a run and one a component (not one a run and component: a shared store holds
    hundreds of runs). A run with no execution of the pipeline's components is left out; output and host are None
    for a run that did not end (killed) or ended before they were written."""
    store = open_store(where)
    prefix = pipeline_name + "."
    node_of = {}
    for node in store.get_contexts_by_type("node"):
        if node.name.startswith(prefix):
            for execution in store.get_executions_by_context(node.id):
                node_of[execution.id] = node.name[len(prefix) :]
    found = {}
    for run in store.get_contexts_by_type("pipeline_run"):
        newest: dict[str, metadata_store_pb2.Execution] = {}
        for execution in store.get_executions_by_context(run.id):
            name = node_of.get(execution.id)
            if name is not None and (name not in newest or execution.id > newest[name].id):
                newest[name] = execution
        if not newest:
            continue
        properties = run.custom_properties
        found[run.name] = {
            "created_ms": run.create_time_since_epoch,
            "nodes": {n: _STATES.get(e.last_known_state, "UNKNOWN") for n, e in newest.items()},
            "output": properties[OUTPUT_PROPERTY].string_value if OUTPUT_PROPERTY in properties else None,
            "host": properties[HOST_PROPERTY].string_value if HOST_PROPERTY in properties else None,
        }
    return found


def _artifacts(
    store: metadata_store.MetadataStore, execution_id: int, event_types: tuple
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def int_property(artifact: metadata_store_pb2.Artifact, name: str) -> int | None:
    """An integer custom property of an artifact (e.g. a blessing's 'blessed'), or None when unset."""
    return artifact.custom_properties[name].int_value if name in artifact.custom_properties else None


def str_property(artifact: metadata_store_pb2.Artifact, name: str) -> str | None:
    """A string custom property of an artifact, or None when unset."""
    return artifact.custom_properties[name].string_value if name in artifact.custom_properties else None


# What an execution wrote, however far it got (a run that was stopped leaves pending outputs).
_OUTPUT_EVENTS = (
    metadata_store_pb2.Event.OUTPUT,
    metadata_store_pb2.Event.DECLARED_OUTPUT,
    metadata_store_pb2.Event.PENDING_OUTPUT,
)


def executor_io(where: str, component: str, which: int, out: str) -> tuple[dict, dict, dict, dict]:
    """(input_dict, output_dict, exec_properties, recorded) to run a component's executor again on the inputs and
    properties one of its executions recorded, with fresh output artifacts under `out` (a folder an output key);
    `recorded` is that execution's own outputs (key -> their URIs). `component`: the end of the execution type's
    name (Evaluator, Transform, ...); `which`: the execution, oldest first (-1: the newest). What
    bench/component_alone.py and the tests that compare two executors on one run's inputs run."""
    from tfx.types import artifact_utils  # here: the commands that only read a store do not import TFX's types

    store = open_store(where)
    (kind,) = [t for t in store.get_execution_types() if t.name.endswith(component)]
    execution = sorted(store.get_executions_by_type(kind.name), key=lambda e: e.id)[which]
    properties = {
        k: v.string_value if v.HasField("string_value") else v.int_value
        for k, v in execution.custom_properties.items()
        if not k.startswith("__")
    }
    read = _artifacts(store, execution.id, (metadata_store_pb2.Event.INPUT,))
    written = _artifacts(store, execution.id, _OUTPUT_EVENTS)
    type_ids = {a.type_id for found in (read, written) for artifacts in found.values() for a in artifacts}
    types = {t.id: t for t in store.get_artifact_types_by_id(list(type_ids))}
    inputs = {
        key: [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts]
        for key, artifacts in read.items()
    }
    outputs, recorded = {}, {}
    for key, artifacts in written.items():
        recorded[key] = [a.uri for a in artifacts]
        for artifact in artifacts:
            fresh = artifact_utils.deserialize_artifact(
                types[artifact.type_id], metadata_store_pb2.Artifact(type_id=artifact.type_id)
            )
            fresh.uri = os.path.join(out, key)
            os.makedirs(fresh.uri, exist_ok=True)
            outputs.setdefault(key, []).append(fresh)
    return inputs, outputs, properties, recorded
