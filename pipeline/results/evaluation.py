"""The Evaluator's results read back: TFMA metrics per slice and model, and TFMA's own validation (the blessing)."""

import tensorflow_model_analysis as tfma

from components.serving_baseline import FOUND, SERVING_PATH, SERVING_VERSION
from pipeline import eval_config as ec
from pipeline.gates import GateConfig
from pipeline.results.metadata import NodeRun, int_property, str_property

CANDIDATE, BASELINE = "candidate", "baseline"
CHANGE_KIND = "change vs the model serving"


def _slice_name(slice_key) -> str:
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
        per_model = result.setdefault(_slice_name(metrics_for_slice.slice_key), {})
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
        slice_name = _slice_name(per_slice.slice_key)
        baseline = metrics.get(slice_name, {}).get(BASELINE, {})
        for failure in per_slice.failures:
            name = failure.metric_key.name
            threshold = failure.metric_threshold
            is_change = failure.metric_key.is_diff
            failures.append(
                {
                    "slice": slice_name,
                    "metric": name,
                    "kind": CHANGE_KIND if is_change else "value",
                    # For a change threshold TFMA reports the difference candidate - baseline.
                    "value": metrics.get(slice_name, {}).get(CANDIDATE, {}).get(name),
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


def gate_results(gates: GateConfig, overall: dict, baseline: dict | None, failures: list) -> list:
    """One row per gate with TFMA's outcome: 'fail' where TFMA recorded a failure, else 'pass'; a change gate
    without a baseline (the first run) is 'not applied', as TFMA skips it."""
    failed = {(f["metric"], f["kind"]) for f in failures if f["slice"] == "overall"}
    rows = []
    for metric, floor, _drop in ec.GATED:
        rows.append(
            {
                "metric": metric,
                "kind": "value",
                "gate": floor,
                "threshold": getattr(gates, floor),
                "value": overall.get(metric),
                "baseline_value": None,
                "result": "fail" if (metric, "value") in failed else "pass",
            }
        )
    for metric, _floor, drop in ec.GATED:
        applied = baseline is not None and metric in baseline
        rows.append(
            {
                "metric": metric,
                "kind": CHANGE_KIND,
                "gate": drop,
                "threshold": getattr(gates, drop),
                "value": overall.get(metric),
                "baseline_value": baseline.get(metric) if applied else None,
                "result": ("fail" if (metric, CHANGE_KIND) in failed else "pass") if applied else "not applied",
            }
        )
    return rows


def evaluation_summary(evaluator: NodeRun, gates: GateConfig) -> dict:
    """The test metrics overall and per slice, TFMA's verdict per gate, the blessing, and the baseline."""
    uri = evaluator.output_uri("evaluation")
    metrics = read_metrics(uri)
    blessing = evaluator.outputs["blessing"][0]
    given = evaluator.inputs.get("baseline_model") or []
    # ServingBaseline's output is there on every run; it holds a model only when a version was serving.
    baseline = given if given and int_property(given[0], FOUND) == 1 else None
    candidate = {name: per_model.get(CANDIDATE, {}) for name, per_model in metrics.items()}
    overall = candidate.get("overall", {})
    baseline_overall = metrics.get("overall", {}).get(BASELINE, {}) if baseline else None
    validation_ok, failures = read_validation(uri, metrics)
    return {
        "split": "test",
        "gates": gates.to_dict(),
        "overall": overall,
        "slices": {name: values for name, values in sorted(candidate.items()) if name != "overall"},
        "blessed": int_property(blessing, "blessed") == 1,
        "validation_ok": validation_ok,
        "gate_results": gate_results(gates, overall, baseline_overall, failures),
        "not_blessed_reasons": failures,
        "baseline": (
            {
                "model_uri": baseline[0].uri,
                "serving_version": str_property(baseline[0], SERVING_VERSION),
                "serving_path": str_property(baseline[0], SERVING_PATH),
                "overall": baseline_overall,
            }
            if baseline
            else None
        ),
        "evaluation_uri": uri,
    }
