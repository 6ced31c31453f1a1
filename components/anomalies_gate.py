"""AnomaliesGate: a custom component that fails the run when the ExampleValidator found any anomaly.

Nothing downstream of the gate runs after it fails: LocalDagRunner stops at the
first failing component, and Kubeflow/Vertex do not start dependent tasks.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

import contract


class DataRejectedError(RuntimeError):
    """The data broke the schema; the message names each feature and anomaly."""


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


def describe(found: list[dict]) -> str:
    """All anomalies in one line, naming each feature once with the splits it failed in."""
    splits_of: dict[tuple, list[str]] = {}
    for a in found:
        splits_of.setdefault((a["feature"], a["short"], a["description"]), []).append(a["split"])
    parts = []
    for (feature, short, description), splits in splits_of.items():
        where = f"feature '{feature}'" if feature else "dataset"
        parts.append(f"{where} (split {', '.join(splits)}): {short}: {description}")
    return "; ".join(parts)


@tfx.dsl.components.component
def AnomaliesGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    code_version: tfx.dsl.components.Parameter[str] = "",
):
    """Raises DataRejectedError when the anomalies artifact holds any anomaly.

    code_version is unused here: it is the fingerprint of this code, so a change to it re-runs the gate.
    """
    del code_version
    found = read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if found:
        raise DataRejectedError("data rejected: " + describe(found))
