"""The drift gate's reading and wording, on DistributionValidator output written here, and its thresholds file."""

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.proto import distribution_validator_pb2

import contract
from components.lib import drift
from components.lib.rejection import reasons
from datasets import spec as dataset_spec


def _write_pair(folder, pair, measured: dict, past: list[str], missing: tuple = ()):
    anomalies = anomalies_pb2.Anomalies()
    for feature, (kind, value, threshold) in measured.items():
        info = anomalies.drift_skew_info.add()
        info.path.step.append(feature)
        m = info.drift_measurements.add()
        m.type = anomalies_pb2.DriftSkewInfo.Measurement.Type.Value(kind)
        m.value, m.threshold = value, threshold
    for feature in past:
        reason = anomalies.anomaly_info[feature].reason.add()
        reason.type = anomalies_pb2.AnomalyInfo.Type.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH
    for feature in missing:
        reason = anomalies.anomaly_info[feature].reason.add()
        reason.type = anomalies_pb2.AnomalyInfo.Type.STATS_NOT_AVAILABLE
    path = folder / contract.split_pair_dir(pair) / contract.ANOMALIES_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(anomalies.SerializeToString())


def test_comparisons_are_read_with_every_feature_value_and_threshold(tmp_path):
    _write_pair(
        tmp_path,
        contract.SKEW_PAIR,
        {"V1": ("JENSEN_SHANNON_DIVERGENCE", 0.81, 0.5), "Class": ("L_INFTY", 0.01, 0.15)},
        past=["V1"],
    )
    _write_pair(tmp_path, contract.DRIFT_PAIR, {"V2": ("JENSEN_SHANNON_DIVERGENCE", 0.1, 0.5)}, [], missing=("V9",))
    names = [drift.pair_name(contract.SKEW_PAIR), drift.pair_name(contract.DRIFT_PAIR)]
    found = drift.read_comparisons(str(tmp_path), names)
    assert [c["pair"] for c in found] == [list(contract.SKEW_PAIR), list(contract.DRIFT_PAIR)]
    skew = {f["feature"]: f for f in found[0]["features"]}
    assert skew["V1"] == {
        "feature": "V1",
        "measure": "jensen_shannon_divergence",
        "value": 0.81,
        "threshold": 0.5,
        "exceeded": True,
    }
    assert skew["Class"]["measure"] == "l_infinity" and not skew["Class"]["exceeded"]
    assert {f["feature"]: f["exceeded"] for f in found[1]["features"]} == {"V2": False, "V9": True}
    problems = drift.problems(found)
    assert problems == [
        "drift (test split vs train split): V1 Jensen-Shannon divergence 0.810 > 0.5",
        "drift (newest span vs previous span): V9 could not be compared (missing from one side's statistics)",
    ]


def test_drift_stops_the_gate_unless_accepted():
    problems = ["drift (test split vs train split): V1 Jensen-Shannon divergence 0.810 > 0.5"]
    counts = {
        "train": {"rows": 100, "frauds": 30},
        "eval": {"rows": 20, "frauds": 6},
        "test": {"rows": 20, "frauds": 6},
    }
    minimums = {"train": 20, "eval": 5, "test": 5}
    stopped = reasons([], counts, minimums, problems)
    assert len(stopped) == 1 and "V1 Jensen-Shannon divergence 0.810 > 0.5" in stopped[0]
    assert "--accept-drift" in stopped[0]
    assert reasons([], counts, minimums, problems, accept_drift=True) == []
    assert reasons([], counts, minimums, []) == []


def test_the_thresholds_file_compares_every_model_feature_and_the_label_but_not_time():
    config = text_format.Parse(
        dataset_spec.drift_config(dataset_spec.default()), distribution_validator_pb2.DistributionValidatorConfig()
    )
    comparators = {".".join(f.path.step): f.distribution_comparator for f in config.default_slice_config.feature}
    assert set(comparators) == {*contract.MODEL_FEATURES, contract.LABEL}
    for name in contract.MODEL_FEATURES:
        jsd = comparators[name].jensen_shannon_divergence
        # The thresholds the file's comments justify from bench/drift_thresholds.py's measurements.
        assert jsd.threshold == pytest.approx(0.5) and jsd.source.type == jsd.source.QUANTILES, name
    assert comparators[contract.LABEL].infinity_norm.threshold == pytest.approx(0.15)
