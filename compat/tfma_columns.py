"""TFMA's metrics evaluator without its per-example step: the combiners' accumulators made from whole columns, and
the evaluator's own steps from the combined metrics to the sliced results, called on results in memory.

Replaces: the per-example `add_input` of TFMA's example count (`_ExampleCountCombiner`), calibration histogram
(`_CalibrationHistogramCombiner`: AUC, PR-AUC, recall at precision) and binary confusion matrices
(`_BinaryConfusionMatrixCombiner`: the decision counts), by accumulators made from a slice's labels and predictions at
once with the same sums; and the private steps of TFMA's MetricsPlotsAndValidationsEvaluator after the combine
(`_filter_and_separate_computations`, the derived and diff metrics of `_AddDerivedCrossSliceAndDiffMetrics`,
`_remove_private_metrics`, `_filter_by_key_type`) and of `ExtractEvaluateAndWriteResults`
(`_update_eval_config_with_defaults`), which the Evaluator's in-process evaluation (components/evaluator/in_process.py)
calls in the same order on the same values.
Why: TFMA adds each example to each combiner of each slice with a Python call, most of the Evaluator's time and
twice the work on a retrain; a column's sums are one NumPy call (docs/benchmarks.md, "The Evaluator without TFMA's
per-example step").
Only unweighted accumulators without sub keys, aggregations, class weights or example ids are made here (the rest
raises Unsupported, and the Evaluator runs TFMA's pipeline); `available()` is False on a TFMA of another version.

Compared with TFMA's own combiners fed an example at a time, accumulator by accumulator and metric by metric:
tests/test_evaluator_in_process_unit.py; whole evaluations against TFMA's Beam pipeline on the same inputs:
tests/test_gates_e2e.py and tests/test_your_data_e2e.py.
"""

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import model_eval_lib
from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as matrices_lib
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as evaluator
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration_histogram,
    example_count,
    metric_specs,
    metric_types,
)

import compat

DISTRIBUTIONS = ("tensorflow-model-analysis",)

COUNT, HISTOGRAM, MATRIX, OWN = "count", "histogram", "matrix", "own"


class Unsupported(Exception):  # noqa: N818 - a finding about the config, handled by the caller
    """A computation this module does not make from columns."""


def available() -> bool:
    """Whether TFMA is the version this module was written against."""
    return compat.supported("tfma_columns", *DISTRIBUTIONS)


@dataclasses.dataclass
class Computations:
    """An EvalConfig's metric computations, as TFMA's evaluator separates them: the combiners (each with the kind
    of accumulator that stands for it), then the derived and the confidence-interval derived computations."""

    combiners: list
    derived: list
    ci_derived: list


def computations(eval_config, own: Callable[[object], bool] = lambda combiner: False, schema=None) -> Computations:
    """The EvalConfig's computations, as TFMA's evaluator makes them; Unsupported where a combiner is not one of
    those above (nor `own`, the caller's), or there are cross-slice computations."""
    separated = evaluator._filter_and_separate_computations(
        metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config, schema=schema)
    )
    if separated.cross_slice_computations:
        raise Unsupported("cross slice metrics")
    combiners = [(c.combiner, _kind(c.combiner, own)) for c in separated.non_derived_computations]
    return Computations(combiners, separated.derived_computations, separated.ci_derived_computations)


def _kind(combiner, own) -> str:
    if own(combiner):
        return OWN
    if isinstance(combiner, example_count._ExampleCountCombiner):
        if combiner._example_weighted:
            raise Unsupported("a weighted example count")
        return COUNT
    key = getattr(combiner, "_key", None)
    if key is None or key.sub_key is not None or key.aggregation_type is not None:
        raise Unsupported(f"a combiner with a sub key or an aggregation: {type(combiner).__name__}")
    if not isinstance(
        combiner,
        (calibration_histogram._CalibrationHistogramCombiner, binary_confusion_matrices._BinaryConfusionMatrixCombiner),
    ):
        raise Unsupported(f"a combiner not made from columns: {type(combiner).__name__}")
    if combiner._aggregation_type or combiner._class_weights or combiner._example_weighted:
        raise Unsupported(f"an aggregation, class weights or weights: {type(combiner).__name__}")
    if isinstance(combiner, calibration_histogram._CalibrationHistogramCombiner):
        return HISTOGRAM
    if combiner._example_id_key:
        raise Unsupported("a confusion matrix that keeps example ids")
    return MATRIX


def key_of(combiner):
    """The MetricKey (model and output) whose labels and predictions a histogram or matrix combiner reads."""
    return combiner._key


def count(combiner, examples: int):
    """_ExampleCountCombiner's accumulator after `examples` unweighted examples: 1.0 added an example to 0.0,
    whole numbers, exact in a float64."""
    return combiner.create_accumulator() + np.float64(examples)


def histogram(combiner, labels: np.ndarray, predictions: np.ndarray) -> dict:
    """_CalibrationHistogramCombiner's accumulator after the examples (float64 labels and predictions) with weight
    1.0 in their order: each bucket by its formula, its sums added in the examples' order (np.add.at adds
    unbuffered, in order), the buckets in the order first met."""
    values = predictions if combiner._prediction_based_bucketing else labels
    n = combiner._num_buckets
    index = ((values - combiner._left) / combiner._range * n) + 1
    index = np.where(index < 0, 0, np.where(index >= n + 1, n + 1, np.trunc(index))).astype(np.int64)
    ids, first, inverse = np.unique(index, return_index=True, return_inverse=True)
    sums = np.zeros((3, ids.size))
    np.add.at(sums[0], inverse, labels * 1.0)
    np.add.at(sums[1], inverse, predictions * 1.0)
    np.add.at(sums[2], inverse, 1.0)
    return {
        int(ids[i]): calibration_histogram.Bucket(int(ids[i]), float(sums[0, i]), float(sums[1, i]), float(sums[2, i]))
        for i in np.argsort(first, kind="stable")
    }


def matrices(combiner, labels: np.ndarray, predictions: np.ndarray) -> dict:
    """_BinaryConfusionMatrixCombiner's accumulator after the examples with weight 1.0: its comparisons at each
    threshold, the weights' sums counted (whole numbers, exact), no example ids."""
    computation = combiner._binary_confusion_matrices
    accumulator = computation.create_accumulator()
    for threshold in computation._thresholds:
        positive = labels == 1.0 if computation._enable_fractional_labels else labels > threshold
        flagged = predictions > threshold
        matrix = matrices_lib.Matrix(
            tp=float(np.sum(positive & flagged)),
            tn=float(np.sum(~positive & ~flagged)),
            fp=float(np.sum(~positive & flagged)),
            fn=float(np.sum(positive & ~flagged)),
        )
        entry = matrices_lib._ThresholdEntry(matrix, tp_examples=[], tn_examples=[], fp_examples=[], fn_examples=[])
        accumulator[threshold] = computation._merge_entry(accumulator, threshold, entry)
    return accumulator


def sliced_result(slice_key, combined: dict, found: Computations, baseline_name: str | None) -> tuple:
    """(slice key, metrics) from the combiners' outputs of a slice, as TFMA's evaluator goes on: the derived
    metrics, the diffs against the baseline (_AddDerivedCrossSliceAndDiffMetrics's add_diff_metrics), the
    confidence-interval derived ones, the private metrics removed."""
    metrics = copy.copy(combined)
    for computation in found.derived:
        metrics.update(computation.result(metrics))
    if baseline_name:
        diffs = {}
        for key, value in metrics.items():
            if evaluator._is_private_metrics(key) or key.is_diff:
                continue
            baseline_key = key.make_baseline_key(baseline_name)
            if key.model_name != baseline_name and baseline_key in metrics:
                if evaluator._is_metric_diffable(value):
                    diffs[key.make_diff_key()] = value - metrics[baseline_key]
        metrics.update(diffs)
    for computation in found.ci_derived:
        metrics.update(computation.result(metrics))
    return evaluator._remove_private_metrics(slice_key, metrics)


def by_key_type(results: list) -> dict[str, list]:
    """The sliced results split as TFMA's evaluator splits them: {"metrics", "plots", "attributions": [(slice key,
    {key: value})]}, every slice in each."""
    kinds = {
        constants.METRICS_KEY: metric_types.MetricKey,
        constants.PLOTS_KEY: metric_types.PlotKey,
        constants.ATTRIBUTIONS_KEY: metric_types.AttributionsKey,
    }
    return {name: [evaluator._filter_by_key_type(r, kind) for r in results] for name, kind in kinds.items()}


def eval_config_for(eval_config, eval_shared_model):
    """The EvalConfig as ExtractEvaluateAndWriteResults updates it for its models before it evaluates and writes."""
    return model_eval_lib._update_eval_config_with_defaults(eval_config, eval_shared_model)
