"""AnomaliesGate: a custom component that fails the run when the data cannot train a model.

It fails when the ExampleValidator found any anomaly against the curated schema, when a split holds no rows
or fewer frauds than its minimum (components.lib.rejection), or when the DistributionValidator found a feature
past its drift or skew threshold (components.lib.drift), unless the run accepts drift. Nothing downstream of the
gate runs after it fails: LocalDagRunner stops at the first failing component, and Kubeflow/Vertex do not start
dependent tasks.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

import contract
from components.lib import drift
from components.lib.rejection import DEFAULT_MIN_FRAUDS, DataRejectedError, reasons


def _frauds(dataset: statistics_pb2.DatasetFeatureStatistics, label: str) -> int | None:
    for feature in dataset.features:
        if list(feature.path.step) == [label]:
            # The curated schema marks the label categorical, so its counts are exact top values.
            return int(sum(v.frequency for v in feature.string_stats.top_values if v.value == "1"))
    return None


def read_split_counts(
    uri: str, split_names: list[str], label: str = contract.LABEL
) -> dict[str, dict[str, int | None]]:
    """Rows and frauds per split, from an ExampleStatistics artifact (frauds None without a usable label)."""
    counts = {}
    for split in split_names:
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with fileio.open(os.path.join(uri, contract.split_dir(split), contract.STATISTICS_FILE), "rb") as f:
            stats.ParseFromString(f.read())
        dataset = stats.datasets[0]
        counts[split] = {"rows": int(dataset.num_examples), "frauds": _frauds(dataset, label)}
    return counts


def read_anomalies(uri: str, split_names: list[str]) -> list[dict]:
    """Reads an ExampleAnomalies artifact into one dict per (split, feature) anomaly.

    Args:
      uri: the artifact's folder.
      split_names: the artifact's splits.

    Returns:
      Dicts with keys split, feature, short and description, sorted by feature then split.
    """
    found = []
    for split in split_names:
        path = os.path.join(uri, contract.split_dir(split), contract.ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        for feature, info in anomalies.anomaly_info.items():
            found.append(
                {
                    "split": split,
                    "feature": feature,
                    "short": info.short_description,
                    "description": info.description,
                }
            )
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            found.append(
                {"split": split, "feature": "", "short": info.short_description, "description": info.description}
            )
    return sorted(found, key=lambda a: (a["feature"], a["split"]))


@component
def AnomaliesGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    drift_anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    min_train_frauds: Parameter[int] = DEFAULT_MIN_FRAUDS["train"],
    min_eval_frauds: Parameter[int] = DEFAULT_MIN_FRAUDS["eval"],
    min_test_frauds: Parameter[int] = DEFAULT_MIN_FRAUDS["test"],
    accept_drift: Parameter[bool] = False,
    code_version: Parameter[str] = "",
    label: Parameter[str] = contract.LABEL,
):
    """Raises DataRejectedError when the validator found anomalies, a split is empty or short of frauds, or a
    feature drifted past its threshold (unless accept_drift: the run then goes on and its summary says so).

    label: the dataset's label column (its positives are 1 in the examples). code_version is unused here: it is
    the fingerprint of this code, so a change to it re-runs the gate.
    """
    del code_version
    found = read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    counts = read_split_counts(statistics.uri, artifact_utils.decode_split_names(statistics.split_names), label)
    minimums = {"train": min_train_frauds, "eval": min_eval_frauds, "test": min_test_frauds}
    comparisons = drift.read_comparisons(
        drift_anomalies.uri, artifact_utils.decode_split_names(drift_anomalies.split_names)
    )
    found_reasons = reasons(found, counts, minimums, drift.problems(comparisons), accept_drift)
    if found_reasons:
        raise DataRejectedError("data rejected: " + "; ".join(found_reasons))
