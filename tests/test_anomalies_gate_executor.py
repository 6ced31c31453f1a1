"""The AnomaliesGate's executor called directly on statistics and anomalies artifacts made here: it lets good data
through and stops each kind of bad data with the reason named."""

import json
import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx.types import standard_artifacts

import contract
from components.anomalies_gate.component import AnomaliesGate
from components.lib.rejection import DataRejectedError

COUNTS = {"train": (600, 100), "eval": (150, 25), "test": (190, 15)}


def _artifact(cls, uri, splits):
    artifact = cls()
    artifact.uri = str(uri)
    artifact.split_names = json.dumps(list(splits))
    return artifact


def _statistics(tmp_path, counts):
    for split, (rows, frauds) in counts.items():
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        dataset = stats.datasets.add(num_examples=rows)
        feature = dataset.features.add()
        feature.path.step.append(contract.LABEL)
        feature.string_stats.top_values.add(value="1", frequency=frauds)
        feature.string_stats.top_values.add(value="0", frequency=rows - frauds)
        folder = tmp_path / "statistics" / contract.split_dir(split)
        folder.mkdir(parents=True)
        (folder / contract.STATISTICS_FILE).write_bytes(stats.SerializeToString())
    return _artifact(standard_artifacts.ExampleStatistics, tmp_path / "statistics", counts)


def _anomalies(tmp_path, found: dict):
    for split in COUNTS:
        anomalies = anomalies_pb2.Anomalies()
        for feature, short in found.get(split, {}).items():
            anomalies.anomaly_info[feature].short_description = short
        folder = tmp_path / "anomalies" / contract.split_dir(split)
        folder.mkdir(parents=True)
        (folder / contract.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    return _artifact(standard_artifacts.ExampleAnomalies, tmp_path / "anomalies", COUNTS)


def _drift(tmp_path, value: float):
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.drift_skew_info.add()
    info.path.step.append("V3")
    measurement = info.drift_measurements.add(value=value, threshold=0.5)
    measurement.type = anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE
    folder = tmp_path / "drift" / contract.split_pair_dir(contract.SKEW_PAIR)
    folder.mkdir(parents=True)
    (folder / contract.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    return _artifact(standard_artifacts.ExampleAnomalies, tmp_path / "drift", ["test_train"])


def _gate(tmp_path, counts=COUNTS, found=None, drift=0.1, accept_drift=False):
    executor = AnomaliesGate.EXECUTOR_SPEC.executor_class()
    inputs = {
        "anomalies": [_anomalies(tmp_path, found or {})],
        "statistics": [_statistics(tmp_path, counts)],
        "drift_anomalies": [_drift(tmp_path, drift)],
    }
    params = {"min_train_frauds": 20, "min_eval_frauds": 5, "min_test_frauds": 5, "accept_drift": accept_drift}
    executor.Do(inputs, {}, {**params, "code_version": ""})


def test_good_data_goes_through_down_to_the_minimum_and_not_one_fraud_below(tmp_path):
    _gate(tmp_path / "good")  # raises DataRejectedError if stopped
    at_minimum = {**COUNTS, "train": (COUNTS["train"][0], 20)}
    _gate(tmp_path / "at-minimum", counts=at_minimum)
    with pytest.raises(DataRejectedError, match="train"):
        _gate(tmp_path / "below", counts={**COUNTS, "train": (COUNTS["train"][0], 19)})


def test_an_anomaly_stops_the_run_naming_feature_and_split(tmp_path):
    with pytest.raises(DataRejectedError, match=r"Amount.*eval|eval.*Amount"):
        _gate(tmp_path, found={"eval": {"Amount": "Out-of-range values"}})


def test_too_few_frauds_stop_the_run_naming_the_split(tmp_path):
    with pytest.raises(DataRejectedError, match=r"test.*3 frauds|3 frauds.*test"):
        _gate(tmp_path, counts={**COUNTS, "test": (190, 3)})


def test_skew_past_its_threshold_stops_the_run_unless_accepted(tmp_path):
    with pytest.raises(DataRejectedError, match=r"V3 Jensen-Shannon divergence 0.800 > 0.5"):
        _gate(tmp_path / "a", drift=0.8)
    _gate(tmp_path / "b", drift=0.8, accept_drift=True)
    assert os.path.isdir(tmp_path / "b" / "drift")
