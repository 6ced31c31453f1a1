"""Serving skew of a scoring batch: the rows `predict` scores, described by TFDV and compared with the serving
model's training data the way the drift gate compares splits.

- Statistics: TFDV's own generators (the ones StatisticsGen runs, with the curated schema), run once on a uniform
  sample of the batch's rows: all of them up to SAMPLE_ROWS, beyond that SAMPLE_ROWS drawn evenly from the whole
  batch as it streams (bottom-k: each row draws a random key, the rows of the SAMPLE_ROWS smallest keys are kept),
  so memory stays flat as the batch grows. Min and max are every row's (the schema's ranges are checked on all
  rows); the rest (counts, means, quantiles, histograms) are the sample's, as with TFDV's own sample_rate option.
  TFDV's quantile sketches were most of the record's cost on every row (docs/serving.md, what the record costs).
- Against training: the model's train split statistics, written into every pushed version by the Pusher
  (contract.TRAIN_STATISTICS), compared with TFDV's validate_statistics and the comparators and thresholds of
  the dataset spec, as TFX's DistributionValidator does (a schema inferred from the baseline, the configured
  comparators set on it). The label is compared only when the batch carries it.
- Against the contract: the curated schema in its SERVING environment, where Class is optional.
TFDV is imported only when a batch is scored (its import brings Beam along): `import pipeline.scoring.predict` stays
light.
"""

import os

import numpy as np
from google.protobuf import text_format

import contract
from components.lib import drift
from components.lib.csv_contract import FEATURES

SERVING_ENVIRONMENT = "SERVING"
NAME = "scored batch vs the model's training data"
# Rows the statistics describe. A larger batch is sampled: the Jensen-Shannon divergence of 10-bucket histograms
# from this many rows is within about 1e-4 of the whole batch's, against thresholds of 0.5.
SAMPLE_ROWS = 65_536


class BatchStatistics:
    """TFDV statistics of the rows added (of a uniform sample of SAMPLE_ROWS of them, when there are more)."""

    def __init__(self, schema_path: str):
        from tensorflow_data_validation import load_schema_text

        self._schema = load_schema_text(schema_path)
        self._rng = np.random.default_rng(0)  # the same rows give the same statistics
        self._kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (keys, values, label cells) chunks
        self._kept_rows = 0
        self._cut = np.inf  # a row whose key is above the SAMPLE_ROWS-th smallest so far can never be kept
        self._low = np.full(len(FEATURES), np.inf)
        self._high = np.full(len(FEATURES), -np.inf)
        self.rows = 0
        self.labelled = False
        self._result = None

    @property
    def schema(self):
        return self._schema

    def add(self, values: np.ndarray, labels: list[str] | None) -> None:
        """Rows as scored: feature values (rows x FEATURES) and their label cells ('0', '1' or ''), if any."""
        if not len(values):
            return
        self.labelled = self.labelled or labels is not None
        self.rows += len(values)
        self._low = np.minimum(self._low, values.min(axis=0))
        self._high = np.maximum(self._high, values.max(axis=0))
        keys = self._rng.random(len(values))
        chosen = keys < self._cut
        cells = np.asarray(labels if labels is not None else [""] * len(values))
        self._kept.append((keys[chosen], values[chosen], cells[chosen]))
        self._kept_rows += int(chosen.sum())
        if self._kept_rows >= 2 * SAMPLE_ROWS:
            self._keep_smallest()

    def _keep_smallest(self) -> None:
        keys, values, cells = (np.concatenate(part) for part in zip(*self._kept))
        if len(keys) > SAMPLE_ROWS:
            order = np.sort(np.argpartition(keys, SAMPLE_ROWS - 1)[:SAMPLE_ROWS])  # in arrival order
            keys, values, cells = keys[order], values[order], cells[order]
            self._cut = keys.max()
        self._kept, self._kept_rows = [(keys, values, cells)], len(keys)

    def result(self):
        """The batch's DatasetFeatureStatisticsList, once every row is added (no more rows after it)."""
        if self._result is None:
            self._result = self._statistics()
        return self._result

    def _statistics(self):
        import pyarrow as pa
        from tensorflow_data_validation.statistics import stats_impl, stats_options

        generators = stats_impl.get_generators(stats_options.StatsOptions(schema=self._schema), in_memory=True)
        accumulators = [g.create_accumulator() for g in generators]
        if self._kept:
            self._keep_smallest()
            _, values, cells = self._kept[0]
            offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
            by_feature = np.ascontiguousarray(values.T)
            columns = [pa.ListArray.from_arrays(offsets, pa.array(by_feature[j])) for j in range(len(FEATURES))]
            names = list(FEATURES)
            if self.labelled:
                present = cells != ""
                # A row without its label has the label missing (a null list), as in an Example without it.
                label_offsets = pa.array(np.r_[0, np.cumsum(present)].astype(np.int32), mask=np.r_[~present, False])
                columns.append(pa.ListArray.from_arrays(label_offsets, pa.array(cells[present].astype(np.int64))))
                names.append(contract.LABEL)
            batch = pa.RecordBatch.from_arrays(columns, names)
            accumulators = [g.add_input(a, batch) for g, a in zip(generators, accumulators)]
        statistics = stats_impl.extract_statistics_output(accumulators, generators)
        if self.rows > SAMPLE_ROWS:
            extremes = {name: (self._low[j], self._high[j]) for j, name in enumerate(FEATURES)}
            for feature in statistics.datasets[0].features:
                if feature.path.step[0] in extremes:
                    feature.num_stats.min, feature.num_stats.max = extremes[feature.path.step[0]]
        return statistics


def comparators_schema(config, train_stats, labelled: bool, label: str = contract.LABEL):
    """As TFX's DistributionValidator builds it (tfx/components/distribution_validator/executor.py,
    _make_schema_from_config): the baseline's inferred schema with each configured feature's comparator."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import schema_util

    schema = tfdv.infer_schema(train_stats)
    for feature in config.default_slice_config.feature:
        name = ".".join(feature.path.step)
        if name == label and not labelled:
            continue
        try:
            schema_util.get_feature(schema, name).drift_comparator.CopyFrom(feature.distribution_comparator)
        except ValueError:
            continue
    return schema


def compare(
    batch_stats, train_stats, drift_config_text: str, schema, labelled: bool, label: str = contract.LABEL
) -> dict:
    """The batch against the training data and the contract.

    Args:
      schema: the curated schema (its SERVING environment judges the batch), or None where it is not known (a
        dataset spec whose schema is not among the installed ones): then only the distributions are compared.
      label: the label's name (the dataset spec's).

    Returns:
      {"comparison": {"name", "features": drift.measurements(...)}, "exceeded": [one sentence per feature past its
      threshold], "schema_anomalies": [{"feature", "short", "description"}] of the curated schema in SERVING}.
    """
    import tensorflow_data_validation as tfdv
    from tfx.proto import distribution_validator_pb2

    config = text_format.Parse(drift_config_text, distribution_validator_pb2.DistributionValidatorConfig())
    found = tfdv.validate_statistics(
        batch_stats, comparators_schema(config, train_stats, labelled, label), previous_statistics=train_stats
    )
    features = [f for f in drift.measurements(found) if f["value"] is not None]
    comparison = {"pair": ["scored", "train"], "name": NAME, "features": features}
    if schema is None:
        return {
            "comparison": comparison,
            "exceeded": drift.problems([comparison], kind="serving skew"),
            "schema_anomalies": [],
            "schema_checked": False,
        }
    # Class is optional at serving time: where the batch has it, the contract reader has checked it (0, 1 or empty)
    # and the curated schema's SERVING environment, which leaves it out, judges the features only.
    features_only = type(batch_stats)()
    features_only.CopyFrom(batch_stats)
    for dataset in features_only.datasets:
        kept = [f for f in dataset.features if list(f.path.step) != [label]]
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


# -- any dataset spec: rows by column ----------------------------------------------------------------------------


class RowSample:
    """A uniform sample of SAMPLE_ROWS rows (dicts of column -> value, None where missing) of a stream of rows, by
    the same bottom-k draw as BatchStatistics: memory stays flat as the batch grows. For a dataset spec other than
    the default (whose float matrix BatchStatistics takes) and for the model server's windows."""

    def __init__(self):
        self._rng = np.random.default_rng(0)
        self._kept: list[tuple[float, dict]] = []
        self._cut = np.inf
        self.rows = 0

    def add(self, rows: list[dict]) -> None:
        keys = self._rng.random(len(rows))
        self.rows += len(rows)
        self._kept += [(k, r) for k, r in zip(keys.tolist(), rows) if k < self._cut]
        if len(self._kept) >= 2 * SAMPLE_ROWS:
            self._kept.sort(key=lambda kr: kr[0])
            del self._kept[SAMPLE_ROWS:]
            self._cut = self._kept[-1][0]

    @property
    def kept(self) -> int:
        """Rows in the sample."""
        return min(len(self._kept), SAMPLE_ROWS)

    def columns(self, names) -> dict:
        """The sample by column (arrival order is not kept; statistics do not need it)."""
        kept = sorted(self._kept, key=lambda kr: kr[0])[:SAMPLE_ROWS]
        return {name: [row.get(name) for _, row in kept] for name in names}


def column_statistics(columns: dict, kinds: dict, schema=None):
    """TFDV's statistics (the generators StatisticsGen runs, in memory) of rows by column.

    Args:
      columns: name -> list of values (None where missing).
      kinds: name -> "float", "int" or "string": how the examples store the column.
      schema: a schema for the generators (None: as TFDV infers types).
    """
    import pyarrow as pa
    from tensorflow_data_validation.statistics import stats_impl, stats_options

    generators = stats_impl.get_generators(stats_options.StatsOptions(schema=schema), in_memory=True)
    accumulators = [g.create_accumulator() for g in generators]
    arrays, names = [], []
    for name, values in columns.items():
        present = np.asarray([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in values], bool)
        kind = kinds[name]
        kept = [v for v, p in zip(values, present) if p]
        if kind == "float":
            flat = pa.array(np.asarray(kept, np.float32))
        elif kind == "int":
            flat = pa.array(np.asarray(kept, np.int64))
        else:
            flat = pa.array([str(v).encode() for v in kept], pa.binary())
        offsets = pa.array(np.r_[0, np.cumsum(present)].astype(np.int32), mask=np.r_[~present, False])
        arrays.append(pa.ListArray.from_arrays(offsets, flat))
        names.append(name)
    if names and len(arrays[0]):
        batch = pa.RecordBatch.from_arrays(arrays, names)
        accumulators = [g.add_input(a, batch) for g, a in zip(generators, accumulators)]
    return stats_impl.extract_statistics_output(accumulators, generators)


def spec_kinds(spec) -> dict:
    """Column -> "float", "int" or "string", as a dataset spec's examples store it."""
    from datasets.spec import FLOAT, INT

    kinds = {}
    for name in spec.features:
        kind = spec.example_kind(name)
        kinds[name] = "float" if kind == FLOAT else ("int" if kind == INT else "string")
    return kinds


def schema_of(spec):
    """The curated schema of a dataset spec, when it is one of the installed datasets (datasets/*/dataset.yaml of the
    same content), else None: a pushed version carries its spec but not its schema."""
    import glob
    import os

    from datasets import spec as dataset_spec

    if spec == contract.DEFAULT_DATASET:
        path = contract.DEFAULT_DATASET.schema_path
    else:
        path = None
        for candidate in sorted(glob.glob(os.path.join(dataset_spec.DATASETS_DIR, "*", "dataset.yaml"))):
            installed = dataset_spec.load(candidate)
            if installed.digest() == spec.digest():
                path = installed.schema_path
                break
    if path is None or not os.path.isfile(path):
        return None
    from tensorflow_data_validation import load_schema_text

    return load_schema_text(path)


def measure(columns: dict, spec, train_stats, rows: int) -> tuple[dict, object]:
    """(the skew record, the statistics) of rows of a dataset spec's features (columns from RowSample or a window's
    features.parquet) against a version's train statistics; the label is not compared (online rows carry none)."""
    from datasets import spec as dataset_spec

    kinds = spec_kinds(spec)
    schema = schema_of(spec)
    known = {n: v for n, v in columns.items() if n in kinds}
    statistics = column_statistics(known, kinds, None)
    found = compare(statistics, train_stats, dataset_spec.drift_config(spec), schema, False, spec.label)
    return {"measured": True, "rows": rows, **found}, statistics


def measure_recorded(output: str, serving_dir: str) -> list:
    """Measures the serving skew of every recorded window still pending (the model server's, pipeline/server/
    online.py): reads its features, compares them with its version's train statistics, and writes the skew into its
    batch.json (and its statistics.pb). Returns the folders measured.

    A version whose folder is gone (rolled back and removed) or that carries no statistics gets its reason instead.
    """
    import pyarrow.parquet as pq
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from components.lib import serving
    from pipeline.scoring import record as record_lib

    done = []
    for folder in record_lib.online_batches(output):
        batch = record_lib.read_batch(folder)
        if not batch.get("skew", {}).get("pending"):
            continue
        version = str(batch["model"]["version"])
        candidates = [serving.join(serving_dir, version), serving.join(serving.archive_dir(serving_dir), version)]
        model_dir = next((c for c in candidates if serving.exists(c)), None)
        train = os.path.join(model_dir, contract.TRAIN_STATISTICS) if model_dir else None
        features = folder / record_lib.FEATURES_FILE
        if train is None or not os.path.isfile(train) or not features.is_file():
            reason = f"version {version} carries no training statistics" if model_dir else f"version {version} is gone"
            batch["skew"] = {"measured": False, "reason": reason}
        else:
            with open(train, "rb") as f:
                train_stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
            spec = serving.dataset_of_model(model_dir)
            table = pq.read_table(features)
            sample = RowSample()
            sample.add(table.to_pylist())
            skew, statistics = measure(sample.columns(table.column_names), spec, train_stats, table.num_rows)
            (folder / record_lib.STATISTICS_FILE).write_bytes(statistics.SerializeToString())
            batch["skew"], batch["statistics_rows"] = skew, sample.kept
        record_lib.write_batch(folder, batch)
        done.append(folder)
    return done
