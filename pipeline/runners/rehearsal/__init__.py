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

from pipeline.runners.rehearsal.driver import (
    KUBEFLOW,
    VERTEX,
    _kfp_metadata_roundtrip,
    root_parameters,
    target_of,
)
from pipeline.runners.rehearsal.mapping import (
    DATAFLOW_ONLY,
    IMAGE_ENV,
    IMAGE_PROJECT_DIR,
    Mapping,
    RehearsalError,
    map_beam_args,
)
from pipeline.runners.rehearsal.results import executed
from pipeline.runners.rehearsal.scheduler import Rehearsal, TaskResult, order, rehearse

__all__ = [
    "DATAFLOW_ONLY",
    "IMAGE_ENV",
    "IMAGE_PROJECT_DIR",
    "KUBEFLOW",
    "VERTEX",
    "Mapping",
    "Rehearsal",
    "RehearsalError",
    "TaskResult",
    "_kfp_metadata_roundtrip",
    "executed",
    "map_beam_args",
    "order",
    "rehearse",
    "root_parameters",
    "target_of",
]
