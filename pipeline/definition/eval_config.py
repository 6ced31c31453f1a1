"""The TFMA EvalConfig of the Evaluator: metrics on the model's two outputs, slices, and the blessing gates."""

import json

import tensorflow_model_analysis as tfma

import contract
from compat import tfma as tfma_metrics
from components.evaluator import metrics
from datasets.spec import DatasetSpec
from pipeline.definition.gates import GateConfig

# Metric names as they appear in TFMA's results and in summary.json.
EXAMPLE_COUNT = "example_count"
PR_AUC = "pr_auc"
ROC_AUC = "roc_auc"
PRECISION = "precision"
RECALL = "recall"
RECALL_AT_PRECISION = "recall_at_precision"
COUNTS = ("tp", "fp", "tn", "fn")
# The gated metrics: (metric, GateConfig field of its floor, GateConfig field of its allowed drop).
GATED = ((PR_AUC, "min_pr_auc", "max_pr_auc_drop"), (RECALL_AT_PRECISION, "min_recall_at_precision", "max_recall_drop"))


def _metric(class_name: str, name: str, threshold=None, **config) -> tfma.MetricConfig:
    # Gates apply to the overall slice only: a slice holds a handful of frauds, too few to block a model on.
    gates = [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)] if threshold else []
    # TFMA's metrics as compat.tfma has them: the same results, a faster per-example step.
    module, name_of_class = tfma_metrics.metric_class(class_name)
    return tfma.MetricConfig(
        class_name=name_of_class,
        module=module,
        config=json.dumps({"name": name, **config}),
        per_slice_thresholds=gates,
    )


def _gate(floor: float, max_drop: float) -> tfma.MetricThreshold:
    # Without a blessed baseline (the first run) the Evaluator ignores change thresholds (TFX "rubber stamp").
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": floor}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}
        ),
    )


def _card_precision(dataset: DatasetSpec) -> tfma.MetricConfig:
    """Card precision@k of the spec's card (components/evaluator/metrics.py): read, never gated."""
    ranked = dataset.card_precision
    config = {"name": ranked.metric, "entity": ranked.entity, "time": dataset.time, "k": ranked.k}
    return tfma.MetricConfig(class_name=metrics.CLASS_NAME, module=metrics.__name__, config=json.dumps(config))


# The serving decision is 0 or 1, so counting it above 0.5 counts exactly the rows the model flags.
_DECISION_CUT = [0.5]


def eval_config(gates: GateConfig, dataset: DatasetSpec = contract.DEFAULT_DATASET) -> tfma.EvalConfig:
    """TFMA config: raw test examples through the serving signature, sliced overall and by the dataset's slices.

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
    floors = {metric: _gate(getattr(gates, floor), getattr(gates, drop)) for metric, floor, drop in GATED}
    scores = [
        _metric("ExampleCount", EXAMPLE_COUNT),
        _metric("AUC", ROC_AUC),
        _metric("AUCPrecisionRecall", PR_AUC, floors[PR_AUC]),
        _metric("RecallAtPrecision", RECALL_AT_PRECISION, floors[RECALL_AT_PRECISION], precision=gates.at_precision),
    ]
    if dataset.card_precision is not None:
        scores.append(_card_precision(dataset))
    outputs = (contract.PROBABILITY_OUTPUT, contract.DECISION_OUTPUT)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Loaded as a plain SavedModel through its signatures, not rebuilt as a Keras model: Beam workers
                # then need no Keras at all (a worker where tf.keras is Keras 3 cannot load a Keras 2 model).
                model_type=tfma.TF_GENERIC,
                signature_name=contract.SERVING_SIGNATURE,
                label_keys={name: dataset.label for name in outputs},
                prediction_keys={name: name for name in outputs},
                preprocessing_function_names=[contract.TRANSFORMED_FEATURES_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[s.name]) for s in dataset.slices],
        metrics_specs=[
            tfma.MetricsSpec(metrics=scores, output_names=[contract.PROBABILITY_OUTPUT]),
            # The decision counts describe the candidate; no gate reads them of the baseline, so on a retrain they are
            # not computed for it (TFMA keeps the single unnamed model when there is no baseline).
            tfma.MetricsSpec(
                metrics=decisions, output_names=[contract.DECISION_OUTPUT], model_names=[tfma.CANDIDATE_KEY]
            ),
        ],
        # The model's own compiled Keras metrics would be computed again under other names; these are the ones.
        options=tfma.Options(include_default_metrics={"value": False}),
    )
