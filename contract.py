"""The contract every layer shares: split names, serving outputs, file names, output layout.

It imports nothing heavy, and from the project only the dataset spec's loader (datasets.spec, beside it in the
lowest layer), so the code TFX loads inside components (components/, transform/, trainer/) and the orchestration
around it (pipeline/) can both depend on it. The columns of the data are the dataset spec's (datasets/).
"""

import dataclasses
import os

from datasets import spec as dataset_spec

# ----------------------------------------------------------------------------------------------------------------
# The default dataset's files: its spec and the curated schema ImportSchemaGen brings in and ExampleValidator
# enforces; reviewed and committed under datasets/ulb/.

CONTRACT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATASET = dataset_spec.default()
DATASET_FILE = dataset_spec.DEFAULT_SPEC
SCHEMA_FILE = DEFAULT_DATASET.schema_path
# Where the Dockerfile installs the project (its WORKDIR), so where the compiled pipeline finds these files.
IMAGE_PROJECT_DIR = "/pipeline"

# ----------------------------------------------------------------------------------------------------------------
# Raw data.

# The default (ULB) dataset's names, from its spec, for the code that reads that dataset alone: the Arrow fast paths
# of CsvExampleGen and `predict`, and serving skew (docs/your-data.md, "What is not done yet"); everything else takes a
# DatasetSpec. The time column, the amount, the label, and the plain z-scored features (V1..V28).
TIME = DEFAULT_DATASET.time
AMOUNT = DEFAULT_DATASET.amount
LABEL = DEFAULT_DATASET.label
V_FEATURES = tuple(f.name for f in DEFAULT_DATASET.numeric if f.transform == "zscore")

# Every raw input column except the label: 30 required floats.
RAW_FLOAT_FEATURES = (TIME, *V_FEATURES, AMOUNT)
RAW_COLUMNS = (*RAW_FLOAT_FEATURES, LABEL)

# ----------------------------------------------------------------------------------------------------------------
# Model inputs and slices (what Transform emits).

# Time is dropped from the model inputs (it only orders the splits and feeds a slice).
MODEL_FEATURES = tuple(f.name for f in DEFAULT_DATASET.numeric)

# Model inputs are z-scores clipped to [-CLIP, CLIP].
(CLIP,) = {f.clip for f in DEFAULT_DATASET.numeric}
# Added to Amount before the log, so an amount of 0 stays finite.
(AMOUNT_LOG_OFFSET,) = (f.log_offset for f in DEFAULT_DATASET.numeric if f.transform == "log_zscore")

# Transform outputs that are not model inputs: evaluation slices (the spec's: the amount in buckets of fixed edges,
# so slices mean the same in every run, and the time of day in windows counting from the first transaction).
AMOUNT_BUCKET, HOUR_BUCKET = SLICE_FEATURES = tuple(s.name for s in DEFAULT_DATASET.slices)
AMOUNT_EDGES, AMOUNT_LABELS = DEFAULT_DATASET.slices[0].edges, DEFAULT_DATASET.slices[0].labels
HOURS_PER_BUCKET = DEFAULT_DATASET.slices[1].hours
HOUR_LABELS = tuple(f"{h:02d}-{h + HOURS_PER_BUCKET:02d}h" for h in range(0, 24, HOURS_PER_BUCKET))


def transformed_name(name: str) -> str:
    """The name Transform gives a model input."""
    return f"{name}_xf"


MODEL_INPUTS = tuple(transformed_name(n) for n in MODEL_FEATURES)
# Time of day as a point on a circle (Time mod 24 h, as sine and cosine, so 23:59 is next to 00:00): Transform always
# emits it; the model takes it as two more inputs when its hparams ask for it (Time itself never is an input).
SECONDS_PER_DAY = 86400.0
TIME_OF_DAY_INPUTS = ("hour_sin", "hour_cos")

# ----------------------------------------------------------------------------------------------------------------
# Splits.

# Output splits and their shares (hash buckets for the random scheme, quantiles of Time for the time scheme).
SPLIT_BUCKETS = {"train": 16, "eval": 4, "test": 5}
SPLITS = tuple(SPLIT_BUCKETS)
# The splits the Trainer reads, and so the ones Transform writes: it fits on train and stops early on eval.
TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT = SPLITS
TRAINING_SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)
SPLIT_SCHEMES = ("time", "random")
# With spans (--data a folder of time-ordered spans), CsvExampleGen also writes the newest span's rows and the
# previous span's as two more splits, for the drift comparison; nothing trains or evaluates on them.
SPAN_NEWEST = "span_newest"
SPAN_PREVIOUS = "span_previous"
# The DistributionValidator's comparisons, as (current split, baseline split): skew within a run, and drift from
# the previous span to the newest.
SKEW_PAIR = ("test", "train")
DRIFT_PAIR = (SPAN_NEWEST, SPAN_PREVIOUS)


def split_dir(split: str) -> str:
    """The folder of one split inside a TFX Examples, ExampleStatistics or ExampleAnomalies artifact."""
    return f"Split-{split}"


def split_pair_dir(pair: tuple[str, str]) -> str:
    """The folder of one (current, baseline) split pair inside a DistributionValidator's anomalies artifact."""
    return f"SplitPair-{pair[0]}_{pair[1]}"


# Custom properties CsvExampleGen sets on its Examples artifact: the data files it read (relative to the input
# folder, JSON) and their content fingerprint, half of a model's training identity (components/lib/serving.py).
DATA_FILES_PROPERTY = "data_files"
DATA_FINGERPRINT_PROPERTY = "data_fingerprint"
# Custom properties of ServingBaseline's Model output: whether a serving model was found, and which.
BASELINE_FOUND_PROPERTY = "found"
BASELINE_VERSION_PROPERTY = "serving_version"
BASELINE_PATH_PROPERTY = "serving_path"

# Files TFX 1.16 writes inside a split folder.
STATISTICS_FILE = "FeatureStats.pb"
ANOMALIES_FILE = "SchemaDiff.pb"

# Rows per batch when data are read or scored in bulk (not a training hyperparameter).
READ_BATCH_SIZE = 8192

# ----------------------------------------------------------------------------------------------------------------
# The exported model.

# The SavedModel's folder inside a Trainer Model artifact (TFX 1.16).
SERVING_MODEL_DIR = "Format-Serving"
# Signatures: what a client calls (raw features, no label), and every Transform output (TFMA slices on these).
SERVING_SIGNATURE = "serving_default"
TRANSFORMED_FEATURES_SIGNATURE = "transformed_features"
# The raw features by name, one tensor each (TF Serving's JSON REST API: {"instances": [{"Amount": 12.5, ...}]}).
FEATURES_SIGNATURE = "serving_features"
# Its inputs, as the Trainer exported them (name -> dtype), written next to the model for the warm-up requests.
FEATURES_INPUTS = os.path.join("assets.extra", "serving_features.json")
# The signatures' input: a batch of serialized raw tf.Examples.
SERVING_INPUT = "examples"
# The serving signature's outputs: the fraud probability, and the decision (1 = flag) at the operating threshold.
PROBABILITY_OUTPUT = "probability"
DECISION_OUTPUT = "decision"
# Written next to the SavedModel (TF Serving's assets.extra convention), so they travel with the model.
TRAINING_SUMMARY = os.path.join("assets.extra", "training_summary.json")
OPERATING_THRESHOLD = os.path.join("assets.extra", "operating_threshold.json")
# Written by the Pusher into each version it pushes: the data and training configuration the model came from, and
# their hash, the model's training identity (components/lib/serving.py).
LINEAGE = os.path.join("assets.extra", "lineage.json")
# The dataset spec the model was trained by (datasets.spec.DatasetSpec.to_json): what `predict`, `outcomes`,
# `rollback` and ServingBaseline read the version's columns from.
DATASET_SPEC = os.path.join("assets.extra", "dataset.json")
# The train split's statistics (StatisticsGen's, a DatasetFeatureStatisticsList): what `predict` compares each
# scoring batch with (serving skew).
TRAIN_STATISTICS = os.path.join("assets.extra", "train_statistics.pb")
# TF Serving replays the PredictionLogs in this file when it loads a version, before it serves it (the Pusher writes
# real raw examples of the eval split there; see components/pusher/warmup.py).
WARMUP_REQUESTS = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Every other file of a pushed version with its SHA-256, written before the version appears; `predict`,
# ServingBaseline and `rollback` check it before they load or promote a version (components/lib/serving.py).
MANIFEST = os.path.join("assets.extra", "manifest.json")
# The split the warm-up examples come from, and the model name their requests carry (docs/serving.md serves under it).
WARMUP_SPLIT = "eval"
SERVING_MODEL_NAME = "fraud"

# ----------------------------------------------------------------------------------------------------------------
# A local run's output folder.


_RUN_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:+-")


def is_run_id(text) -> bool:
    """Is this a run id as TFX's LocalDagRunner and Kubeflow make them (at most 128 of letters, digits and '._:+-',
    not starting with '.'): one file name, no separator, no '..'?"""
    return (
        isinstance(text, str) and 0 < len(text) <= 128 and not text.startswith(".") and set(text) <= _RUN_ID_CHARACTERS
    )


def is_version(name) -> bool:
    """Is this a version folder's name as TF Serving reads it: ASCII digits only ('²' is a digit to str.isdigit)?"""
    return isinstance(name, str) and name.isascii() and name.isdigit()


def version_order(version) -> tuple:
    """A sort key for model versions of either kind: numbered versions (as numbers) before folder names of --model."""
    text = str(version)
    return (0, int(text), "") if is_version(text) else (1, 0, text)


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
        """The folder of one run's summary and report (the run id with ':' made file-name safe).

        Raises:
          ValueError: a run id that is not one name of letters, digits and '.:_+-' (one read from a file that was
            changed, e.g. an absolute path or '..', which would put the report outside the output folder).
        """
        if not is_run_id(run_id):
            raise ValueError(f"{run_id!r} is not a run id (letters, digits and '.:_+-', not starting with '.')")
        return os.path.join(self.runs_dir, run_id.replace(":", "-"))

    def run_summary_path(self, run_id: str) -> str:
        return os.path.join(self.run_dir(run_id), "summary.json")

    def report_dir(self, run_id: str) -> str:
        return os.path.join(self.run_dir(run_id), "report")

    @property
    def compare_json_path(self) -> str:
        return os.path.join(self.root, "compare.json")

    @property
    def compare_dir(self) -> str:
        return os.path.join(self.root, "compare")
