"""The typed, frozen configuration that create_pipeline takes; only runners and the CLI build it."""

import dataclasses
import os

from pipeline import features
from pipeline.gates import GateConfig
from trainer.hparams import HParams, ThresholdPolicy

DEFAULT_PIPELINE_NAME = "fraud-detection"
DATA_ROOT_PARAMETER = "data_root"
# Orchestrators `fraud-pipeline compile` writes a spec for.
TARGETS = ("vertex", "kubeflow")


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
      metadata_path: the SQLite ML Metadata file for local runs; None where the
        orchestrator provides metadata (Kubeflow, Vertex).
      beam_pipeline_args: passed to every Beam-based component.
      enable_cache: reuse earlier results of unchanged components.
      pipeline_name: the name in ML Metadata and on the orchestrator.
      hparams: the Trainer's hyperparameters.
      threshold_policy: how the Trainer picks the operating threshold on the eval split.
      gates: the Evaluator's thresholds (the blessing gate).
      baseline_excludes_candidate: resolve the Evaluator's baseline with LatestBlessedOtherModelStrategy, so an
        unchanged re-run is fully cached; False uses TFX's LatestBlessedModelStrategy (what Kubeflow V2 compiles).
      runtime_data_root: make data_root a runtime parameter (DATA_ROOT_PARAMETER, defaulting to data_root) that
        each Kubeflow/Vertex run can set.
      code_version: a fingerprint of the Transform and Trainer code. TFX does not put code loaded by dotted
        path into its cache key, so this goes into their custom_config to re-run them when the code changes.
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
    threshold_policy: ThresholdPolicy = ThresholdPolicy()
    gates: GateConfig = GateConfig()
    baseline_excludes_candidate: bool = True
    runtime_data_root: bool = False
    code_version: str = ""

    def __post_init__(self):
        if self.split not in features.SPLIT_SCHEMES:
            raise ValueError(f"split must be one of {features.SPLIT_SCHEMES}, got {self.split!r}")


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where a run writes inside its output folder; reused across runs so caching works."""

    root: str

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "tfx")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.root, "serving")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def summary_path(self) -> str:
        return os.path.join(self.root, "summary.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "pipeline.log")

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, "runs")

    def run_dir(self, run_id: str) -> str:
        """The folder of one run's summary and report (the run id with ':' made file-name safe)."""
        return os.path.join(self.runs_dir, run_id.replace(":", "-"))

    def run_summary_path(self, run_id: str) -> str:
        return os.path.join(self.run_dir(run_id), "summary.json")

    def report_dir(self, run_id: str) -> str:
        return os.path.join(self.run_dir(run_id), "report")
