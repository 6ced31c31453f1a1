"""Drift and skew as the DistributionValidator measured them: read per comparison, and told as a gate's reasons.

No TFX here (predict reads serving skew with the same functions); the executor is
components/distribution_validator/component.py.

The DistributionValidator writes one Anomalies proto per (current split, baseline split) pair, with every
compared feature's measurement and threshold in drift_skew_info and, for each one past its threshold, an anomaly.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2

import contract
from components.lib import serving

PAIRS = {
    contract.SKEW_PAIR: "test split vs train split",
    contract.DRIFT_PAIR: "newest span vs previous span",
}
_MEASURES = {
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "jensen_shannon_divergence",
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "l_infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: "normalized_abs_difference",
}
MEASURE_NAMES = {
    "jensen_shannon_divergence": "Jensen-Shannon divergence",
    "l_infinity": "L-infinity distance",
    "normalized_abs_difference": "normalized absolute difference",
}
# Anomalies that mean a configured feature could not be compared at all.
_NOT_COMPARED = anomalies_pb2.AnomalyInfo.Type.STATS_NOT_AVAILABLE


def pair_name(pair: tuple[str, str]) -> str:
    """The split-pair name the DistributionValidator gives a (current, baseline) pair."""
    return f"{pair[0]}_{pair[1]}"


def read_comparisons(uri: str, pair_names: list[str]) -> list[dict]:
    """The measurements of a DistributionValidator's anomalies artifact, one dict per comparison.

    Returns:
      [{"pair": [current, baseline], "name": ..., "features": [{"feature", "measure", "value", "threshold",
      "exceeded"}]}], for the pairs of PAIRS found among pair_names, in PAIRS' order. A configured feature that
      could not be compared has value None and counts as exceeded.
    """
    comparisons = []
    for pair, name in PAIRS.items():
        if pair_name(pair) not in pair_names:
            continue
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(
            serving.read_bytes(os.path.join(uri, contract.split_pair_dir(pair), contract.ANOMALIES_FILE))
        )
        comparisons.append({"pair": list(pair), "name": name, "features": measurements(anomalies)})
    return comparisons


def measurements(anomalies: anomalies_pb2.Anomalies) -> list[dict]:
    """Each compared feature of one comparison (TFDV's validate_statistics with drift comparators): feature,
    measure, value, threshold, exceeded; a configured feature that could not be compared has value None."""
    features = []
    for info in anomalies.drift_skew_info:
        for m in info.drift_measurements:
            features.append(
                {
                    "feature": ".".join(info.path.step),
                    "measure": _MEASURES.get(m.type, "unknown"),
                    "value": m.value,
                    "threshold": m.threshold,
                    "exceeded": m.value > m.threshold,
                }
            )
    for feature, info in anomalies.anomaly_info.items():
        if any(r.type == _NOT_COMPARED for r in info.reason):
            features.append({"feature": feature, "measure": None, "value": None, "threshold": None, "exceeded": True})
    return features


def largest(features: list[dict]) -> dict | None:
    """The measured feature furthest over (or nearest to) its threshold: the largest value / threshold, among the
    features with a value and a threshold; None when there is none."""
    measured = [f for f in features if f.get("value") is not None and f.get("threshold")]
    return max(measured, key=lambda f: f["value"] / f["threshold"]) if measured else None


def _describe_feature(f: dict) -> str:
    if f["value"] is None:
        return f"{f['feature']} could not be compared (missing from one side's statistics)"
    return f"{f['feature']} {MEASURE_NAMES.get(f['measure'], f['measure'])} {f['value']:.3f} > {f['threshold']:g}"


def problems(comparisons: list[dict], kind: str = "drift") -> list[str]:
    """One sentence per comparison with a feature past its threshold, naming each feature, value and threshold."""
    found = []
    for comparison in comparisons:
        exceeded = [f for f in comparison["features"] if f["exceeded"]]
        if exceeded:
            found.append(f"{kind} ({comparison['name']}): " + ", ".join(_describe_feature(f) for f in exceeded))
    return found
