"""The typed, frozen configuration that create_pipeline takes; only runners and the CLI build it."""

import dataclasses
import json

import contract
from datasets.spec import DatasetSpec
from pipeline.definition.gates import DataMinimums, GateConfig
from trainer.hparams import HParams, ThresholdPolicy

DEFAULT_PIPELINE_NAME = "fraud-detection"
COMPARE_PIPELINE_NAME = "fraud-detection-compare"
DATA_ROOT_PARAMETER = "data_root"
# Orchestrators `fraud-pipeline compile` writes a spec for.
TARGETS = ("vertex", "kubeflow")

# Component ids (TFX's defaults, which tests and metadata queries rely on).
EXAMPLE_GEN = "CsvExampleGen"
SCHEMA_IMPORTER = "ImportSchemaGen"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
DISTRIBUTION_VALIDATOR = "DistributionValidator"
GATE = "AnomaliesGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
SERVING_BASELINE = "ServingBaseline"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# The project code that runs inside each component, by the module TFX loads (a dotted path or the executor's
# module, or both). The CLI fingerprints each one with every project module it imports, since TFX's cache key does not
# cover code loaded by dotted path.
PREPROCESSING_FN = "transform.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"
TUNER_FN = "trainer.task.tuner_fn"
COMPONENT_CODE = {
    EXAMPLE_GEN: "components.example_gen.executor",
    STATISTICS_GEN: "components.statistics_gen.component",
    GATE: "components.anomalies_gate.component",
    # The preprocessing_fn, and the executor that reads its examples.
    TRANSFORM: (PREPROCESSING_FN.rsplit(".", 1)[0], "components.transform.component"),
    TUNER: TUNER_FN.rsplit(".", 1)[0],
    TRAINER: RUN_FN.rsplit(".", 1)[0],
    # ServingBaseline's, and the Evaluator's after it (which has no code version: a new baseline re-runs it).
    SERVING_BASELINE: ("components.serving_baseline.component", "components.evaluator.component"),
    PUSHER: "components.pusher.component",
}
# The components whose code shapes the model, and so its training identity (PipelineConfig.training_config).
TRAINING_CODE = (EXAMPLE_GEN, TRANSFORM, TUNER, TRAINER)


def compare_node_ids(strategy: str) -> tuple[str, str]:
    """The (Trainer, Evaluator) component ids of a strategy in the comparison pipeline."""
    return f"{TRAINER}_{strategy}", f"{EVALUATOR}_{strategy}"


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything create_pipeline needs.

    Attributes:
      pipeline_root: where TFX writes artifacts.
      serving_dir: where the Pusher puts blessed models, each in a versioned folder.
      data_root: the folder holding the input CSV files.
      data_pattern: the glob of input files inside data_root.
      schema_path: the curated schema (schema.pbtxt) ImportSchemaGen brings in.
      split: 'time' (ordered by Time) or 'random' (hash-based).
      metadata_path: the ML Metadata store of local runs, as pipeline.definition.metadata.location gives it (the
        SQLite file, or a shared PostgreSQL database's URL); None where the orchestrator provides metadata
        (Kubeflow, Vertex).
      beam_pipeline_args: passed to every Beam-based component.
      enable_cache: reuse earlier results of unchanged components.
      pipeline_name: the name in ML Metadata and on the orchestrator.
      hparams: the Trainer's hyperparameters.
      threshold_policy: how the Trainer picks the operating threshold on the eval split.
      gates: the Evaluator's thresholds (the blessing gate).
      data_minimums: the fewest frauds per split the AnomaliesGate lets through to Transform.
      example_gen_driver: use TFX's FileBasedExampleGen driver, which fingerprints the input files before the
        cache lookup (local runs); False for Kubeflow and Vertex, where nothing runs the compiled driver hook.
      baseline_key: part of ServingBaseline's cache key (components.lib.serving.baseline_key), set by local runs so
        that a change to the serving folder that changes the baseline re-runs it; '' where nothing is cached by it.
      schema_fingerprint: the hash of the curated schema file, part of the models' training identity.
      runtime_data_root: make data_root a runtime parameter (DATA_ROOT_PARAMETER, defaulting to data_root) that
        each Kubeflow/Vertex run can set.
      span_pattern: for input in spans, their pattern inside data_root, with {SPAN} or a date (components.lib.spans);
        '' for one file or a flat folder (data_pattern is read then).
      window: with spans, how many of the newest to train on (0: all).
      drift_config: the DistributionValidator's thresholds (datasets.spec.drift_config), as text-format
        DistributionValidatorConfig; '' compares nothing.
      accept_drift: let the run go on past drift or skew beyond the thresholds (the summary records it).
      dataset: the dataset spec (datasets/): the columns, how each is transformed, the slices and the drift
        thresholds; the ULB credit-card spec by default.
      code_versions: component id (keys of COMPONENT_CODE) -> fingerprint of the project code that runs in it.
        TFX does not put code loaded by dotted path into its cache key, so each goes into its component's
        properties, and a change to that code re-runs the component (and what depends on it).
    """

    pipeline_root: str
    serving_dir: str
    data_root: str
    data_pattern: str
    schema_path: str
    split: str = "time"
    metadata_path: str | None = None
    beam_pipeline_args: tuple[str, ...] = ()
    enable_cache: bool = True
    pipeline_name: str = DEFAULT_PIPELINE_NAME
    hparams: HParams = HParams()
    tune_trials: int = 0
    threshold_policy: ThresholdPolicy = ThresholdPolicy()
    gates: GateConfig = GateConfig()
    data_minimums: DataMinimums = DataMinimums()
    example_gen_driver: bool = True
    baseline_key: str = ""
    schema_fingerprint: str = ""
    runtime_data_root: bool = False
    span_pattern: str = ""
    window: int = 0
    drift_config: str = ""
    accept_drift: bool = False
    dataset: DatasetSpec = contract.DEFAULT_DATASET
    code_versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.split not in contract.SPLIT_SCHEMES:
            raise ValueError(f"split must be one of {contract.SPLIT_SCHEMES}, got {self.split!r}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.tune_trials < 0:
            raise ValueError(f"tune_trials must be >= 0, got {self.tune_trials}")
        unknown = set(self.code_versions) - set(COMPONENT_CODE)
        if unknown:
            raise ValueError(f"code_versions for unknown components {sorted(unknown)}")

    def dataset_json(self) -> str:
        """The dataset spec as the components receive it: its JSON, or '' for the default spec (whose components'
        properties, and so their cache keys and compiled specs, are those of a pipeline before there were specs)."""
        return "" if self.dataset == contract.DEFAULT_DATASET else self.dataset.to_json()

    def dataset_config(self) -> dict:
        """The dataset's entry of a Transform, Trainer or Tuner custom config ({} for the default spec)."""
        text = self.dataset_json()
        return {"dataset": text} if text else {}

    def code_version(self, component: str) -> str:
        """The fingerprint of the code that runs in a component ('' when none was given)."""
        return self.code_versions.get(component, "")

    def training_config(self) -> str:
        """Everything a model is trained from besides its data, as JSON: with the data's fingerprint it makes the
        model's training identity (components.lib.serving), which the baseline and the Pusher compare."""
        dataset = {"dataset": self.dataset.digest()} if self.dataset_json() else {}
        return json.dumps(
            {
                **dataset,
                "split": self.split,
                "span_pattern": self.span_pattern,
                "window": self.window,
                "hparams": self.hparams.to_dict(),
                "tune_trials": self.tune_trials,
                "threshold_policy": self.threshold_policy.to_dict(),
                "schema": self.schema_fingerprint,
                "code": {component: self.code_version(component) for component in TRAINING_CODE},
            },
            sort_keys=True,
        )
