"""TFMA's results read back: metrics per slice and model, and TFMA's own validation of the gates.

Shared by the run's summary (pipeline/results/evaluation.py) and the model card the Pusher writes.
"""

import tensorflow_model_analysis as tfma

CANDIDATE, BASELINE = "candidate", "baseline"
CHANGE_KIND = "change vs the model serving"


def slice_name(slice_key) -> str:
    """'overall' or 'feature=value'."""
    parts = []
    for key in slice_key.single_slice_keys:
        value = key.bytes_value.decode() if key.HasField("bytes_value") else (key.int64_value or key.float_value)
        parts.append(f"{key.column}={value}")
    return ",".join(parts) or "overall"


def read_metrics(evaluation_uri: str) -> dict:
    """slice name -> model name -> metric -> value, for the scalar metrics of an Evaluator output.

    The metric names of the two outputs do not overlap, so the output name is dropped.
    """
    result: dict = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        per_model = result.setdefault(slice_name(metrics_for_slice.slice_key), {})
        for kv in metrics_for_slice.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            per_model.setdefault(kv.key.model_name or CANDIDATE, {})[kv.key.name] = kv.value.double_value.value
    return result


def read_validation(evaluation_uri: str, metrics: dict) -> tuple[bool, list]:
    """TFMA's verdict: (validation_ok, one dict per failed threshold with metric, value, threshold, baseline)."""
    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        name_of_slice = slice_name(per_slice.slice_key)
        baseline = metrics.get(name_of_slice, {}).get(BASELINE, {})
        for failure in per_slice.failures:
            name = failure.metric_key.name
            threshold = failure.metric_threshold
            is_change = failure.metric_key.is_diff
            failures.append(
                {
                    "slice": name_of_slice,
                    "metric": name,
                    "kind": CHANGE_KIND if is_change else "value",
                    # For a change threshold TFMA reports the difference candidate - baseline.
                    "value": metrics.get(name_of_slice, {}).get(CANDIDATE, {}).get(name),
                    "difference": failure.metric_value.double_value.value if is_change else None,
                    "threshold": (
                        threshold.change_threshold.absolute.value
                        if is_change
                        else threshold.value_threshold.lower_bound.value
                    ),
                    "baseline_value": baseline.get(name),
                    "message": failure.message,
                }
            )
    return bool(validation.validation_ok), failures
