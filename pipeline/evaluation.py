"""The TFMA EvalConfig built from the GateConfig, and reading the Evaluator's results back."""

import json

import tensorflow_model_analysis as tfma

from pipeline import features
from pipeline.gates import GateConfig
from trainer.task import DECISION_OUTPUT, SERVING_OUTPUT

# Metric names as they appear in TFMA's results and in summary.json.
EXAMPLE_COUNT = "example_count"
PR_AUC = "pr_auc"
ROC_AUC = "roc_auc"
PRECISION = "precision"
RECALL = "recall"
RECALL_AT_PRECISION = "recall_at_precision"
COUNTS = ("tp", "fp", "tn", "fn")
CANDIDATE, BASELINE = "candidate", "baseline"


def _metric(class_name: str, name: str, threshold=None, **config) -> tfma.MetricConfig:
    # Gates apply to the overall slice only: a slice holds a handful of frauds, too few to block a model on.
    gates = [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)] if threshold else []
    return tfma.MetricConfig(
        class_name=class_name, config=json.dumps({"name": name, **config}), per_slice_thresholds=gates
    )


def _gate(floor: float, max_drop: float) -> tfma.MetricThreshold:
    # Without a blessed baseline (the first run) the Evaluator ignores change thresholds (TFX "rubber stamp").
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": floor}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}
        ),
    )


# The serving decision is 0 or 1, so counting it above 0.5 counts exactly the rows the model flags.
_DECISION_CUT = [0.5]


def eval_config(gates: GateConfig) -> tfma.EvalConfig:
    """TFMA config: raw test examples through the serving signature, sliced overall and by the two buckets.

    The ranking metrics (AUCs, recall at a precision) score the probability output; the counts, precision and
    recall score the decision output, i.e. the model's own operating threshold chosen on the eval split.
    """
    decisions = [
        _metric("TruePositives", "tp", thresholds=_DECISION_CUT),
        _metric("FalsePositives", "fp", thresholds=_DECISION_CUT),
        _metric("TrueNegatives", "tn", thresholds=_DECISION_CUT),
        _metric("FalseNegatives", "fn", thresholds=_DECISION_CUT),
        _metric("Precision", PRECISION, thresholds=_DECISION_CUT),
        _metric("Recall", RECALL, thresholds=_DECISION_CUT),
    ]
    scores = [
        _metric("ExampleCount", EXAMPLE_COUNT),
        _metric("AUC", ROC_AUC),
        _metric("AUCPrecisionRecall", PR_AUC, _gate(gates.min_pr_auc, gates.max_pr_auc_drop)),
        _metric(
            "RecallAtPrecision",
            RECALL_AT_PRECISION,
            _gate(gates.min_recall_at_precision, gates.max_recall_drop),
            precision=gates.at_precision,
        ),
    ]
    outputs = (SERVING_OUTPUT, DECISION_OUTPUT)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_keys={name: features.LABEL for name in outputs},
                prediction_keys={name: name for name in outputs},
                preprocessing_function_names=["transformed_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in features.SLICE_FEATURES],
        metrics_specs=[
            tfma.MetricsSpec(metrics=scores, output_names=[SERVING_OUTPUT]),
            tfma.MetricsSpec(metrics=decisions, output_names=[DECISION_OUTPUT]),
        ],
        # The model's own compiled Keras metrics would be computed again under other names; these are the ones.
        options=tfma.Options(include_default_metrics={"value": False}),
    )


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


def read_failures(evaluation_uri: str, metrics: dict) -> list:
    """Why a model was not blessed: one dict per failed threshold (metric, value, threshold, baseline_value)."""
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
                    "kind": "change vs latest blessed model" if is_change else "value",
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
    return failures
