"""ServingBaseline: the baseline of a run is the model serving now, on every orchestrator.

TFX's Kubeflow V2 compiler turns a Resolver into a `resolver` executor, which Vertex runs and the open-source Kubeflow
Pipelines backend refuses ("resolver executors not implemented", backend/src/v2/compiler/argocompiler/dag.go). This
component is a plain container task instead, run the same way by LocalDagRunner, Vertex and Kubeflow: it reads the
push destination, picks the newest complete version that is not the candidate's own model
(components.lib.serving.choose_baseline) and copies it into its Model output. The Evaluator (components/evaluator)
compares with it, or applies the value gates only when there is none (a first run), as TFX's Evaluator does
without a baseline.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

import contract
from components.lib import serving
from datasets import spec as dataset_spec

FOUND = contract.BASELINE_FOUND_PROPERTY
SERVING_VERSION = contract.BASELINE_VERSION_PROPERTY
SERVING_PATH = contract.BASELINE_PATH_PROPERTY
# A small record of the choice inside the artifact, for people reading the pipeline root.
CHOICE_FILE = "baseline.json"


@component
def ServingBaseline(
    examples: InputArtifact[standard_artifacts.Examples],
    baseline: OutputArtifact[standard_artifacts.Model],
    serving_dir: Parameter[str],
    training_config: Parameter[str],
    baseline_key: Parameter[str] = "",
    code_version: Parameter[str] = "",
    dataset: Parameter[str] = "",
):
    """Copies the model serving now into `baseline` (as a Trainer's Model: Format-Serving/), or marks it empty.

    Args:
      examples: this run's raw examples (their data fingerprint makes the candidate's identity).
      serving_dir: the push destination.
      training_config: the training configuration (JSON), the other half of the identity.
      baseline_key: unused here; local runs set it to components.lib.serving.baseline_key so that TFX's cache re-runs
        this component exactly when the serving folder changed in a way that changes the choice.
      code_version: unused here: the fingerprint of this code, so that a change to it re-runs the component.
      dataset: this run's dataset spec (DatasetSpec.to_json; '' for the default). A serving model whose own spec
        (in its version) reads columns this run's examples do not have is no baseline: the run is judged as a
        first run, and the record says why.
    """
    del baseline_key, code_version
    identity = serving.examples_training_identity(examples, training_config)
    chosen = serving.choose_baseline(serving_dir, identity)
    record = {"serving_dir": serving_dir, "candidate_identity": identity, "version": None, "path": None}
    spec = dataset_spec.from_json(dataset) if dataset else contract.DEFAULT_DATASET
    if chosen is not None:
        missing = dataset_spec.unreadable(serving.dataset_of_model(chosen[1]), spec)
        if missing:
            record["incomparable"] = {"version": str(chosen[0]), "columns": missing}
            chosen = None
    if chosen is None:
        baseline.set_int_custom_property(FOUND, 0)
    else:
        version, folder = chosen
        serving.verify(folder)  # the model compared with is the one that was pushed (UnverifiedVersionError)
        io_utils.copy_dir(folder, os.path.join(baseline.uri, contract.SERVING_MODEL_DIR))
        baseline.set_int_custom_property(FOUND, 1)
        baseline.set_string_custom_property(SERVING_VERSION, str(version))
        baseline.set_string_custom_property(SERVING_PATH, folder)
        record.update(version=str(version), path=folder)
    io_utils.write_string_file(os.path.join(baseline.uri, CHOICE_FILE), json.dumps(record, indent=2))
