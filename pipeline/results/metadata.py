"""Reads what a local run did from its ML Metadata store: each component's state and output artifacts."""

import dataclasses

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

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


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """Opens an existing SQLite ML Metadata store read-write."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def run_nodes(metadata_path: str, pipeline_name: str, run_id: str) -> dict[str, NodeRun]:
    """The executions of one pipeline run, by component id.

    The run is named, not taken as the newest: two runs writing to one store at once would otherwise read each
    other's (unfinished) executions.

    Args:
      metadata_path: the SQLite ML Metadata file.
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
