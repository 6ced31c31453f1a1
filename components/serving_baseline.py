"""ServingBaseline and the Evaluator around it: the baseline of a run is the model serving now, on every orchestrator.

TFX's Kubeflow V2 compiler turns a Resolver into a `resolver` executor, which Vertex runs and the open-source Kubeflow
Pipelines backend refuses ("resolver executors not implemented", backend/src/v2/compiler/argocompiler/dag.go). This
component is a plain container task instead, run the same way by LocalDagRunner, Vertex and Kubeflow: it reads the
push destination, picks the newest complete version that is not the candidate's own model
(components.serving.choose_baseline) and copies it into its Model output. The Evaluator below compares with it, or
applies the value gates only when there is none (a first run), as TFX's Evaluator does without a baseline.
"""

import json
import os

import numpy as np
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import io_utils

import contract
from components import serving, tfma_extractors, tfma_metrics

# Custom properties of the baseline Model artifact.
FOUND = "found"
SERVING_VERSION = "serving_version"
SERVING_PATH = "serving_path"
# A small record of the choice inside the artifact, for people reading the pipeline root.
CHOICE_FILE = "baseline.json"
# The project code the Evaluator runs besides this module (its extractors, and the metric classes its EvalConfig
# names). TFX keeps code loaded by name out of its cache key; imported here, it is part of the fingerprint of
# ServingBaseline's code, so a change to it re-runs ServingBaseline, and with its new output the Evaluator.
EVALUATOR_CODE = (tfma_extractors, tfma_metrics)


def training_identity(examples, training_config: str) -> str:
    """The candidate's training identity: the fingerprint of the data ExampleGen read and the training config."""
    return serving.training_identity(
        examples.get_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY), training_config
    )


@component
def ServingBaseline(
    examples: InputArtifact[standard_artifacts.Examples],
    baseline: OutputArtifact[standard_artifacts.Model],
    serving_dir: Parameter[str],
    training_config: Parameter[str],
    baseline_key: Parameter[str] = "",
    code_version: Parameter[str] = "",
):
    """Copies the model serving now into `baseline` (as a Trainer's Model: Format-Serving/), or marks it empty.

    Args:
      examples: this run's raw examples (their data fingerprint makes the candidate's identity).
      serving_dir: the push destination.
      training_config: the training configuration (JSON), the other half of the identity.
      baseline_key: unused here; local runs set it to components.serving.baseline_key so that TFX's cache re-runs
        this component exactly when the serving folder changed in a way that changes the choice.
      code_version: unused here: the fingerprint of this code, so that a change to it re-runs the component.
    """
    del baseline_key, code_version
    identity = training_identity(examples, training_config)
    chosen = serving.choose_baseline(serving_dir, identity)
    record = {"serving_dir": serving_dir, "candidate_identity": identity, "version": None, "path": None}
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


# Arrays longer than this print as a summary while the Evaluator runs.
_PRINTED_VALUES = 16


class EvaluatorExecutor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor; an empty ServingBaseline output counts as no baseline (value gates only)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        given = input_dict.get(key) or []
        if given and given[0].get_int_custom_property(FOUND) != 1:
            input_dict = {**input_dict, key: []}
        # TFMA calls each model's signature with a batch of serialized examples as one positional argument. A loaded
        # signature binds keyword arguments only, so TensorFlow first raises a TypeError whose message prints the
        # whole batch, then calls it by position (its flat signature), which works; numpy prints up to 1,000 values
        # in full, so every batch of 1,000 was printed to be thrown away. A summary (the first and last three)
        # prints the same message at no cost; numpy's options are process-wide in numpy 1.x, so they are restored.
        with np.printoptions(threshold=_PRINTED_VALUES):
            super().Do(input_dict, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator (same id, inputs and outputs) with the executor above, and by default the project's TFMA
    extractors (components.tfma_extractors: TFMA's, with the extracts trimmed to what slicing reads; see
    EVALUATOR_CODE for how a change to them re-runs it)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)

    def __init__(self, *args, module_path: str | None = tfma_extractors.__name__, **kwargs):
        super().__init__(*args, module_path=module_path, **kwargs)
