"""`fraud-pipeline predict`: scores CSV transactions in bulk with a pushed model, streaming, in input order.

Rows are read with the same contract as training (pipeline/scoring/rows.py) and scored in batches through the
model's own serving signature (serialized raw tf.Examples, the Transform graph inside), so a score here is the score
TF Serving gives. Memory holds one batch at a time. Every batch of scoring is recorded under OUTPUT/scoring/
(pipeline/scoring/record.py) with its serving skew against the model's training data (pipeline/scoring/skew.py), so
that `outcomes` can join the labels that arrive later.
"""

import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import contract
from components.lib import serving
from components.lib.csv_contract import open_text
from datasets.spec import DatasetSpec
from pipeline.scoring import destination
from pipeline.scoring import record as record_lib
from pipeline.scoring.rows import (
    BATCH_SIZE,
    ExampleEncoder,
    Rejects,
    batches,
    headers,
    input_files,
    spec_batches,
    spec_headers,
)

PROGRESS_SECONDS = 10.0


class ModelNotFoundError(FileNotFoundError):
    """No pushed model where one was expected; the message says where it looked."""


def newest_model(serving_dir: str, warn=lambda line: print(line, file=sys.stderr)) -> Path:
    """The version TF Serving serves: the newest complete one under serving_dir (a newer folder still being copied,
    without saved_model.pb or its variables, is passed over as TF Serving passes it over, and named in a warning)."""
    found = serving.serving_now(serving_dir)
    if found is None:
        raise ModelNotFoundError(
            f"no pushed model under {serving_dir} (run `fraud-pipeline run` first, or give --model)"
        )
    for version in serving.versions(serving_dir):
        if version > found[0]:
            warn(
                f"fraud-pipeline: {serving.join(serving_dir, str(version))} is not a complete model (yet); "
                f"scoring with version {found[0]}, the one TF Serving serves"
            )
    return Path(found[1])


@dataclasses.dataclass(frozen=True)
class Model:
    """A pushed SavedModel's serving signatures, its operating threshold, its version (the folder's name), and what
    it carries of its training: its lineage, the train split's statistics (when pushed with them) and its dataset
    spec. `predict` and the model server (pipeline/server) load a version through it, and through nothing else."""

    path: Path
    version: str
    threshold: float
    serve: object
    # The raw-features signature (contract.FEATURES_SIGNATURE) and its inputs (name -> dtype); None and {} for a
    # version pushed before it existed.
    features: object = None
    feature_inputs: dict = dataclasses.field(default_factory=dict)
    signatures: dict = dataclasses.field(default_factory=dict)
    # The loaded SavedModel (its variables live as long as it does), and the raw-features signature called with one
    # [rows, features] tensor per dtype instead of a tensor per feature (see _packed).
    loaded: object = None
    packed: tuple = ()

    @classmethod
    def load(cls, path: Path, verified: bool = True) -> "Model":
        """Loads a pushed version, its files first checked against its manifest (a SavedModel is code).

        Args:
          verified: False for a folder given by hand with no manifest (warned about by the caller); a folder with a
            manifest is always checked.

        Raises:
          ModelNotFoundError: not a model this pipeline pushed.
          components.lib.serving.UnverifiedVersionError: files that are not those pushed.
        """
        from pipeline.scoring.splits import load_model  # TensorFlow: only once a model is loaded

        threshold_file = path / contract.OPERATING_THRESHOLD
        if not (path / "saved_model.pb").is_file() or not threshold_file.is_file():
            raise ModelNotFoundError(f"{path} is not a model pushed by this pipeline (no saved_model.pb or threshold)")
        if verified or (path / contract.MANIFEST).is_file():
            serving.verify(str(path))
        threshold = json.loads(threshold_file.read_text())["threshold"]
        loaded, serve = load_model(str(path))
        inputs_file = path / contract.FEATURES_INPUTS
        inputs = json.loads(inputs_file.read_text()) if inputs_file.is_file() else {}
        signatures = dict(loaded.signatures)
        features = signatures.get(contract.FEATURES_SIGNATURE) if inputs else None
        packed = _packed(features, inputs) if features is not None else ()
        return cls(path, path.name, float(threshold), serve, features, inputs, signatures, loaded, packed)

    def score(self, serialized: list[bytes]):
        """(probabilities, decisions) of serialized raw examples, as numpy arrays."""
        import tensorflow as tf

        out = self.serve(**{contract.SERVING_INPUT: tf.constant(serialized)})
        return out[contract.PROBABILITY_OUTPUT].numpy().ravel(), out[contract.DECISION_OUTPUT].numpy().ravel()

    def score_features(self, columns: dict, matrix=None):
        """(probabilities, decisions) of raw features by name (each a 1-D array of the input's dtype, NaN or "" where
        missing), through the raw-features signature.

        Args:
          matrix: the same rows as one [rows, features] float32 array, features sorted by name, where every input is
            a float32 (the model server's requests): taken as it is.
        """
        import numpy as np
        import tensorflow as tf

        if self.features is None:
            raise ModelNotFoundError(f"{self.path} has no {contract.FEATURES_SIGNATURE} signature (pushed before it)")
        function, groups = self.packed
        if matrix is not None and len(groups) == 1 and groups[0][0] == "float32":
            matrices = [tf.constant(matrix)]
        else:
            matrices = [
                tf.constant(np.stack([np.asarray(columns[n]) for n in names], axis=1), dtype=dtype)
                for dtype, names in groups
            ]
        out = function(*matrices)
        return out[contract.PROBABILITY_OUTPUT].numpy().ravel(), out[contract.DECISION_OUTPUT].numpy().ravel()

    def warm_up(self) -> int:
        """Replays the version's warm-up requests (contract.WARMUP_REQUESTS) through their signatures, as TF Serving
        does before it serves a version; returns how many. A version without the file warms up with nothing.

        Raises:
          tensorflow.errors.OpError: a request the model cannot answer (the version is then not served).
        """
        path = self.path / contract.WARMUP_REQUESTS
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for raw in tf.data.TFRecordDataset(str(path)):
            request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
            signature = self.signatures[request.model_spec.signature_name or contract.SERVING_SIGNATURE]
            signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
            count += 1
        return count

    def train_statistics(self):
        """The train split's statistics the Pusher put into this version, or None for a version without them."""
        path = self.path / contract.TRAIN_STATISTICS
        if not path.is_file():
            return None
        from tensorflow_metadata.proto.v0 import statistics_pb2

        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(path.read_bytes())
        return stats


def _packed(signature, inputs: dict) -> tuple:
    """(a concrete function, its groups [(dtype, [names])]): the raw-features signature behind one [rows, k] input a
    dtype. The signature takes a tensor a feature, and making thirty tensors of one row costs more than the model
    (docs/benchmarks.md, the model server); the function slices them from the matrices inside the graph and calls the
    same signature, so the scores are the signature's own."""
    import tensorflow as tf

    groups: dict[str, list[str]] = {}
    for name, dtype in sorted(inputs.items()):
        groups.setdefault(dtype, []).append(name)
    order = sorted(groups.items())
    specs = [tf.TensorSpec([None, len(names)], dtype) for dtype, names in order]

    @tf.function(input_signature=specs, autograph=False)
    def call(*matrices):
        columns = {}
        for matrix, (_, names) in zip(matrices, order):
            for i, name in enumerate(names):
                columns[name] = matrix[:, i]
        return signature(**columns)

    return call.get_concrete_function(), order


class Progress:
    """Rows scored and rows per second: a tqdm bar on a terminal, a plain line every PROGRESS_SECONDS otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.rows, self.started = stream, 0, time.monotonic()
        self._last = self.started
        self._bar = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(unit=" rows", unit_scale=True, file=stream, desc="scoring")

    def update(self, rows: int) -> None:
        self.rows += rows
        if self._bar is not None:
            self._bar.update(rows)
            return
        now = time.monotonic()
        if now - self._last >= PROGRESS_SECONDS:
            self._last = now
            print(f"scored {self.rows:,} rows ({self.rate():,.0f} rows/s)", file=self.stream, flush=True)

    def rate(self) -> float:
        return self.rows / max(time.monotonic() - self.started, 1e-9)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclasses.dataclass(frozen=True)
class Result:
    scored: int
    rejected: int
    seconds: float
    model: Path
    # The batch's record (None without an output folder to record into) and its skew (see pipeline/scoring/skew.py).
    record: Path | None = None
    skew: dict | None = None


@dataclasses.dataclass(frozen=True)
class Recording:
    """Where and how a batch is recorded: the output folder, the curated schema and the drift thresholds."""

    output: str
    schema_path: str
    drift_config: str


def _skew(model: Model, statistics, recording: Recording) -> dict:
    from pipeline.scoring import skew

    train = model.train_statistics()
    if train is None:
        return {"measured": False, "reason": f"{model.path} carries no training statistics (pushed before they were)"}
    found = skew.compare(statistics.result(), train, recording.drift_config, statistics.schema, statistics.labelled)
    return {"measured": True, **found}


def _spec_skew(model: Model, sample, spec: DatasetSpec) -> tuple[dict, object]:
    """The serving skew of another dataset's batch (its sampled rows by the spec's columns), and its statistics."""
    from pipeline.scoring import skew

    train = model.train_statistics()
    if train is None:
        return {
            "measured": False,
            "reason": f"{model.path} carries no training statistics (pushed before they were)",
        }, None
    return skew.measure(sample.columns(spec.features), spec, train, sample.rows)


def predict(
    data: str,
    model_path: Path,
    to: str,
    rejects_path: str | None = None,
    batch_size: int = BATCH_SIZE,
    key: str | None = None,
    recording: Recording | None = None,
    verified: bool = True,
    store=None,
) -> Result:
    """Scores every good row of data into `to` (CSV, gzip by extension), in input order; returns the counts.

    Args:
      key: a column of the input passed through to the output and the record with each score (a transaction id).
      recording: record the batch under recording.output/scoring/ with its statistics and serving skew.
      verified: whether a model without a manifest is refused (Model.load).
      store: where the history features of a spec that declares them are kept, (output folder, URL or None):
        pipeline.online_store.store.OnlineStore.open; each batch is written into it and served its windows there.

    Raises:
      DataRejectedError: a header or row that breaks the contract (without rejects_path), naming file and line.
      ModelNotFoundError: model_path is not a pushed model.
      EnvironmentFaultError: another command is writing `to` or rejects_path (pipeline/scoring/destination.py).
    """
    files = input_files(data)
    # The version's own spec: its columns, not a flag's (a version from before specs has the default one).
    spec = serving.dataset_of_model(str(model_path))
    default = spec == contract.DEFAULT_DATASET
    # The spec's key column is the default --key.
    key = key or spec.key or None
    checked = headers(files, key) if default else spec_headers(files, spec, key)
    model = Model.load(model_path, verified)
    online = None
    if spec.history:
        from pipeline.online_store.store import OnlineStore

        output, url = store or (recording.output if recording else os.path.dirname(os.path.abspath(to)), None)
        online = OnlineStore.open(spec, output, url)
    try:
        with destination.writing(to, rejects_path) as (partial, rejects_partial):
            rejects = Rejects(rejects_partial, gz=bool(rejects_path and rejects_path.endswith(".gz")))
            return _score(files, checked, model, (partial, to), rejects, key, recording, batch_size, spec, online)
    finally:
        if online is not None:
            online.close()


class _SpecEncoder:
    """Serializes a dataset's rows (typed cells by column) as the raw tf.Examples its serving signature takes."""

    def __init__(self, spec: DatasetSpec):
        from datasets.spec import FLOAT, INT

        self._kinds = {c: spec.example_kind(c) for c in spec.features}
        self._float, self._int = FLOAT, INT

    def encode(self, rows: list[dict]) -> list[bytes]:
        import tensorflow as tf

        out = []
        for row in rows:
            example = tf.train.Example()
            for name, value in row.items():
                kind = self._kinds.get(name)
                feature = example.features.feature[name]
                if kind == self._float:
                    feature.float_list.value.append(value)
                elif kind == self._int:
                    feature.int64_list.value.append(value)
                elif kind is not None:
                    feature.bytes_list.value.append(str(value).encode())
            out.append(example.SerializeToString(deterministic=True))
        return out


def _score(
    files,
    checked,
    model: Model,
    output: tuple[str, str],
    rejects,
    key,
    recording,
    batch_size,
    spec: DatasetSpec,
    online=None,
) -> Result:
    """predict() once the outputs are locked: output is (the partial file to write, the name it will have)."""
    # One loop from the rows to the written scores and the record, kept whole: each exit path closes the same files.
    partial, to = output
    default = spec == contract.DEFAULT_DATASET
    encoder = ExampleEncoder() if default else _SpecEncoder(spec)
    many = len(files) > 1
    labelled = any(spec.label in header for header in checked.values())
    card = spec.card_precision.entity if spec.card_precision else ""
    writer_record = record_lib.ScoresWriter(recording.output, labelled, key, card=card) if recording else None
    statistics = sample = None
    # Serving skew: the default dataset's float matrix through BatchStatistics, another dataset's typed rows through
    # a sample of them (pipeline/scoring/skew.py).
    if recording is not None and default:
        from pipeline.scoring.skew import BatchStatistics

        statistics = BatchStatistics(recording.schema_path)
    elif recording is not None:
        from pipeline.scoring.skew import RowSample

        sample = RowSample()
    # Scoring starts here: the model and TFDV are loaded (their start-up is not part of the rate).
    progress = Progress()
    started = time.monotonic()
    seconds = None
    try:
        # gzip when the final name ends in .gz (the partial name does not).
        with open_text(partial, "w", gz=to.endswith(".gz")) as out:
            writer = csv.writer(out)
            writer.writerow(
                (["file"] if many else [])
                + ["line"]
                + ([key] if key else [])
                + [spec.time]
                + ([spec.label] if labelled else [])
                + ["probability", "decision", "threshold", "model_version"]
            )
            time_index = contract.RAW_FLOAT_FEATURES.index(contract.TIME) if default else 0
            threshold = f"{model.threshold:.9g}"
            rows = (
                batches(files, rejects, batch_size, checked, key)
                if default
                else spec_batches(files, rejects, spec, batch_size, checked, key)
            )
            for batch in rows:
                if online is not None:
                    # Into the online store, then each row's windows at its time (its batch's earlier rows in them).
                    online.enrich(batch.features)
                if statistics is not None:
                    statistics.add(batch.values, batch.labels)
                if sample is not None:
                    sample.add(batch.features)
                probabilities, decisions = model.score(encoder.encode(batch.values if default else batch.features))
                if writer_record is not None:
                    writer_record.add(batch, probabilities, decisions, model.version)
                # The time as it was read for a spec's rows (an ISO date-time stays one), as a number otherwise.
                times = batch.times_read or [repr(t) for t in batch.values[:, time_index].tolist()]
                lines = batch.lines.tolist()
                labels = batch.labels if batch.labels is not None else [""] * len(batch)
                keys = batch.keys if batch.keys is not None else None
                for i, (probability, decision) in enumerate(zip(probabilities.tolist(), decisions.tolist())):
                    writer.writerow(
                        ([batch.files[i]] if many else [])
                        + [lines[i]]
                        + ([keys[i]] if keys is not None else [])
                        + [times[i]]
                        + ([labels[i]] if labelled else [])
                        + [f"{probability:.9g}", decision, threshold, model.version]
                    )
                progress.update(len(batch))
        if statistics is not None:
            statistics.result()  # the statistics are part of the scoring's time
        seconds = time.monotonic() - started
        record_path = skew = None
        spec_statistics = None
        if writer_record is not None:
            if statistics is not None:
                skew = _skew(model, statistics, recording)
            else:
                skew, spec_statistics = _spec_skew(model, sample, spec)
            record_path = writer_record.close(
                {
                    "model": {
                        "version": model.version,
                        "path": str(model.path),
                        "threshold": model.threshold,
                        "identity": serving.identity_of(str(model.path)),
                    },
                    "inputs": files,
                    "key": key,
                    "labelled": labelled,
                    "rejected": rejects.count,
                    "scores_to": os.path.abspath(to),
                    "skew": skew,
                    "statistics_rows": (
                        statistics.result().datasets[0].num_examples
                        if statistics
                        else (sample.kept if spec_statistics else 0)
                    ),
                    "dataset": {"name": spec.name, "digest": spec.digest()},
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                statistics.result() if statistics else spec_statistics,
            )
    except BaseException:
        if writer_record is not None:
            writer_record.abandon()
        raise
    finally:
        progress.close()
        rejects.close()
    return Result(progress.rows, rejects.count, seconds, model.path, record_path, skew)
