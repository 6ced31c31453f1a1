"""Serving skew of a scoring batch: the rows `predict` scores, described by TFDV and compared with the serving
model's training data the way the drift gate compares splits.

- Statistics: TFDV's own generators (the ones StatisticsGen runs, with the curated schema), fed one scoring batch at a
  time, in a background thread (TFDV's statistics run in C++ and let the scoring go on); the accumulators are
  sketches, so memory stays flat as the batch grows.
- Against training: the model's train split statistics, written into every pushed version by the Pusher
  (contract.TRAIN_STATISTICS), compared with TFDV's validate_statistics and the comparators and thresholds of
  pipeline/drift.pbtxt, as TFX's DistributionValidator does (a schema inferred from the baseline, the configured
  comparators set on it). The label is compared only when the batch carries it.
- Against the contract: the curated schema in its SERVING environment, where Class is optional.
TFDV is imported only when a batch is scored (its import brings Beam along): `import pipeline.predict` stays light.
"""

import queue
import threading

import numpy as np
from google.protobuf import text_format

import contract
from components import drift
from components.csv_contract import FEATURES

SERVING_ENVIRONMENT = "SERVING"
NAME = "scored batch vs the model's training data"


class BatchStatistics:
    """TFDV statistics of the rows added, computed beside the caller in a thread, batch by batch."""

    def __init__(self, schema_path: str):
        from tensorflow_data_validation import load_schema_text
        from tensorflow_data_validation.statistics import stats_impl, stats_options

        self._impl = stats_impl
        self._schema = load_schema_text(schema_path)
        self._generators = stats_impl.get_generators(stats_options.StatsOptions(schema=self._schema), in_memory=True)
        self._accumulators = [g.create_accumulator() for g in self._generators]
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self.labelled = False
        self._result = None
        self._thread = threading.Thread(target=self._work, name="batch-statistics", daemon=True)
        self._thread.start()

    @property
    def schema(self):
        return self._schema

    def add(self, values: np.ndarray, labels: list[str] | None) -> None:
        """Rows as scored: feature values (rows x FEATURES) and their label cells ('0', '1' or ''), if any."""
        self.labelled = self.labelled or labels is not None
        self._queue.put((values, labels))

    def _work(self) -> None:
        import pyarrow as pa

        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                values, labels = item
                offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
                columns = [pa.ListArray.from_arrays(offsets, pa.array(values[:, j])) for j in range(len(FEATURES))]
                names = list(FEATURES)
                if labels is not None:
                    present = [cell != "" for cell in labels]
                    label_offsets = np.r_[0, np.cumsum(present)].astype(np.int32)
                    label_values = [int(cell) for cell in labels if cell != ""]
                    columns.append(
                        pa.ListArray.from_arrays(pa.array(label_offsets), pa.array(label_values, pa.int64()))
                    )
                    names.append(contract.LABEL)
                batch = pa.RecordBatch.from_arrays(columns, names)
                self._accumulators = [g.add_input(a, batch) for g, a in zip(self._generators, self._accumulators)]
            except Exception as e:  # noqa: BLE001 - raised again from result(), in the caller's thread.
                self._error = e

    def result(self):
        """The batch's DatasetFeatureStatisticsList, once every row added is counted (no more rows after it)."""
        if self._result is None:
            self._queue.put(None)
            self._thread.join()
            if self._error is not None:
                raise self._error
            self._result = self._impl.extract_statistics_output(self._accumulators, self._generators)
        return self._result


def _comparators_schema(config, train_stats, labelled: bool):
    """As TFX's DistributionValidator builds it (tfx/components/distribution_validator/executor.py,
    _make_schema_from_config): the baseline's inferred schema with each configured feature's comparator."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import schema_util

    schema = tfdv.infer_schema(train_stats)
    for feature in config.default_slice_config.feature:
        name = ".".join(feature.path.step)
        if name == contract.LABEL and not labelled:
            continue
        try:
            schema_util.get_feature(schema, name).drift_comparator.CopyFrom(feature.distribution_comparator)
        except ValueError:
            continue
    return schema


def compare(batch_stats, train_stats, drift_config_text: str, schema, labelled: bool) -> dict:
    """The batch against the training data and the contract.

    Returns:
      {"comparison": {"name", "features": drift.measurements(...)}, "exceeded": [one sentence per feature past its
      threshold], "schema_anomalies": [{"feature", "short", "description"}] of the curated schema in SERVING}.
    """
    import tensorflow_data_validation as tfdv
    from tfx.proto import distribution_validator_pb2

    config = text_format.Parse(drift_config_text, distribution_validator_pb2.DistributionValidatorConfig())
    found = tfdv.validate_statistics(
        batch_stats, _comparators_schema(config, train_stats, labelled), previous_statistics=train_stats
    )
    features = [f for f in drift.measurements(found) if f["value"] is not None]
    comparison = {"pair": ["scored", "train"], "name": NAME, "features": features}
    # Class is optional at serving time: where the batch has it, the contract reader has checked it (0, 1 or empty)
    # and the curated schema's SERVING environment, which leaves it out, judges the features only.
    features_only = type(batch_stats)()
    features_only.CopyFrom(batch_stats)
    for dataset in features_only.datasets:
        kept = [f for f in dataset.features if list(f.path.step) != [contract.LABEL]]
        del dataset.features[:]
        dataset.features.extend(kept)
    anomalies = tfdv.validate_statistics(features_only, schema, environment=SERVING_ENVIRONMENT)
    return {
        "comparison": comparison,
        "exceeded": drift.problems([comparison], kind="serving skew"),
        "schema_anomalies": [
            {"feature": feature, "short": info.short_description, "description": info.description}
            for feature, info in sorted(anomalies.anomaly_info.items())
        ],
    }
