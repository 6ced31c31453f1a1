"""TFMA: its confusion-matrix metrics and example count with a faster per-example step, and its slice-key extractor's
arguments.

Replaces: the combiners of TFMA's AUC, PR-AUC, recall at precision, decision counts (`_CalibrationHistogramCombiner`,
`_BinaryConfusionMatrixCombiner`) and example count (`_ExampleCountCombiner`), private classes subclassed here.
Why: for each example they call `metric_util.to_label_prediction_example_weight`, a general function (multi-class,
top k, class weights, sparse labels) that among other things defines a new Python class on every call: most of the
Evaluator's time. Here the simple case, a single 0/1 label and a single numeric prediction, unweighted, with no sub
key, aggregation or class weights, takes a short path doing the same float arithmetic in the same order; anything
else goes through TFMA's function. The unweighted example count adds TFMA's 1.0 without looking the weight up.
Also `slice_key_arguments`: the arguments of TFMA's ExtractSliceKeys (`ptransform._args`), for the memoized slice
keys of components/evaluator/extractors.py.

Compared with TFMA's own path by: tests/test_tfma_metrics_unit.py (each Fast class against TFMA's, accumulator by
accumulator) and tests/test_evaluator_executor.py (a whole evaluation, both ways, the same metrics bit for bit).

pipeline/definition/eval_config.py names these classes through `metric_class`; Beam workers import this module
from the installed project.
"""

from collections.abc import Mapping

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration_histogram,
    example_count,
    metric_types,
    metric_util,
)

import compat

DISTRIBUTIONS = ("tensorflow-model-analysis",)

_WEIGHT = np.array([1.0])
# The attribute of an example's inputs object where simple_label_and_prediction keeps what it found.
_MEMO = "_fraud_pipeline_label_and_prediction"
# What TFMA's example count adds for an unweighted example: np.sum(np.array(1.0)).
_ONE = np.sum(np.array(1.0))


def _looked_up(value, model_name: str, output_name: str):
    # As TFMA looks a label or prediction up: by the model's name, then the output's, where the value is keyed so.
    for key in (model_name, output_name):
        if key and isinstance(value, Mapping) and key in value:
            value = value[key]
    return value


def simple_label_and_prediction(element, model_name: str, output_name: str):
    """(label, prediction) as one-element arrays for a single 0/1 label and a single numeric prediction, else None.

    Kept on the element for its other metrics and slices: TFMA hands the same inputs object of an example to every
    metric's combiner of every slice the example is in (seven combiners and three slices on a retrain)."""
    memo = getattr(element, _MEMO, None)
    if memo is None:
        memo = {}
        setattr(element, _MEMO, memo)
    key = (model_name, output_name)
    if key not in memo:
        memo[key] = _simple_label_and_prediction(element, model_name, output_name)
    return memo[key]


def _simple_label_and_prediction(element, model_name: str, output_name: str):
    label = _looked_up(element.label, model_name, output_name)
    prediction = _looked_up(element.prediction, model_name, output_name)
    if not (isinstance(label, np.ndarray) and isinstance(prediction, np.ndarray)):
        return None
    if label.size != 1 or prediction.size != 1 or label.dtype.kind not in "biuf" or prediction.dtype.kind not in "iuf":
        return None
    if label.reshape(-1)[0] not in (0, 1):
        return None
    return label.reshape(1), prediction.reshape(1)


def _extract(element, **kwargs):
    """metric_util.to_label_prediction_example_weight (same arguments) with the short path for the simple case."""
    if not _general(**kwargs):
        pair = simple_label_and_prediction(element, kwargs.get("model_name", ""), kwargs.get("output_name", ""))
        if pair is not None:
            # TFMA yields the label, the prediction and a weight of 1.0 (with fractional labels, a 0/1 label's other
            # half has weight 0 and is not yielded).
            yield pair[0], pair[1], _WEIGHT
            return
    yield from metric_util.to_label_prediction_example_weight(element, **kwargs)


def _general(sub_key=None, aggregation_type=None, class_weights=None, example_weighted=False, **_) -> bool:
    # What only TFMA's general lookup handles (the rest of its arguments do not matter here): the short path is for
    # none of these.
    return bool(sub_key or aggregation_type or class_weights or example_weighted)


def _copy(combiner, cls=None):
    # A new combiner (of cls, by default the same class) with the given one's state; TFMA's is left as it was.
    copied = (cls or type(combiner)).__new__(cls or type(combiner))
    copied.__dict__.update(vars(combiner))
    return copied


class _Histogram(calibration_histogram._CalibrationHistogramCombiner):  # noqa: SLF001 - TFMA's combiner, extended
    """TFMA's calibration histogram combiner; the simple case adds the example without the general lookup."""

    @classmethod
    def of(cls, combiner):
        """TFMA's combiner as this class, with whether its settings allow the short path decided once."""
        fast = _copy(combiner, cls)
        fast._short = not _general(
            sub_key=fast._key.sub_key,
            aggregation_type=fast._aggregation_type,
            class_weights=fast._class_weights,
            example_weighted=fast._example_weighted,
        )
        return fast

    def add_input(self, accumulator, element):
        key = self._key
        pair = simple_label_and_prediction(element, key.model_name, key.output_name) if self._short else None
        if pair is None:
            return super().add_input(accumulator, element)
        label, prediction = float(pair[0][0]), float(pair[1][0])
        # The same sums as TFMA's: its weight is 1.0, so label * weight is label and prediction * weight prediction.
        index = self._bucket_index(prediction if self._prediction_based_bucketing else label)
        bucket = accumulator.get(index)
        if bucket is None:
            accumulator[index] = calibration_histogram.Bucket(index, label * 1.0, prediction * 1.0, 1.0)
        else:
            bucket.weighted_labels += label * 1.0
            bucket.weighted_predictions += prediction * 1.0
            bucket.weighted_examples += 1.0
        return accumulator


class _Count(example_count._ExampleCountCombiner):  # noqa: SLF001 - TFMA's combiner, extended
    """TFMA's example count; unweighted, an example adds what TFMA adds for it, without looking its weight up (the
    weight TFMA then uses is np.array(1.0), whatever the example holds)."""

    def add_input(self, accumulator, element):
        if self._example_weighted:
            return super().add_input(accumulator, element)
        return accumulator + _ONE


def _faster(computations):
    faster = []
    for computation in computations:
        combiner = getattr(computation, "combiner", None)
        if type(combiner) is example_count._ExampleCountCombiner:  # noqa: SLF001
            computation = computation._replace(combiner=_copy(combiner, _Count))
        elif type(combiner) is calibration_histogram._CalibrationHistogramCombiner:  # noqa: SLF001
            computation = computation._replace(combiner=_Histogram.of(combiner))
        elif type(combiner) is binary_confusion_matrices._BinaryConfusionMatrixCombiner:  # noqa: SLF001
            fast = _copy(combiner)
            if fast._extract_label_prediction_and_weight is metric_util.to_label_prediction_example_weight:
                fast._extract_label_prediction_and_weight = _extract
            computation = computation._replace(combiner=fast)
        faster.append(computation)
    return faster


class _Faster:
    def computations(self, *args, **kwargs) -> metric_types.MetricComputations:
        return _faster(super().computations(*args, **kwargs))


# Named apart from TFMA's: TFMA resolves a class name it registered itself before it looks at the module.
class FastExampleCount(_Faster, tfma.metrics.ExampleCount):
    """tfma.metrics.ExampleCount."""


class FastAUC(_Faster, tfma.metrics.AUC):
    """tfma.metrics.AUC."""


class FastAUCPrecisionRecall(_Faster, tfma.metrics.AUCPrecisionRecall):
    """tfma.metrics.AUCPrecisionRecall."""


class FastRecallAtPrecision(_Faster, tfma.metrics.RecallAtPrecision):
    """tfma.metrics.RecallAtPrecision."""


class FastTruePositives(_Faster, tfma.metrics.TruePositives):
    """tfma.metrics.TruePositives."""


class FastFalsePositives(_Faster, tfma.metrics.FalsePositives):
    """tfma.metrics.FalsePositives."""


class FastTrueNegatives(_Faster, tfma.metrics.TrueNegatives):
    """tfma.metrics.TrueNegatives."""


class FastFalseNegatives(_Faster, tfma.metrics.FalseNegatives):
    """tfma.metrics.FalseNegatives."""


class FastPrecision(_Faster, tfma.metrics.Precision):
    """tfma.metrics.Precision."""


class FastRecall(_Faster, tfma.metrics.Recall):
    """tfma.metrics.Recall."""


FAST = {
    cls.__name__.removeprefix("Fast"): cls
    for cls in (
        FastExampleCount,
        FastAUC,
        FastAUCPrecisionRecall,
        FastRecallAtPrecision,
        FastTruePositives,
        FastFalsePositives,
        FastTrueNegatives,
        FastFalseNegatives,
        FastPrecision,
        FastRecall,
    )
}


def metric_class(class_name: str) -> tuple[str, str]:
    """(module, class name) of the metric to put in a MetricConfig for TFMA's `class_name`: this module's Fast class
    where there is one and TFMA is the version it was written against, else TFMA's own class ("" is TFMA's module).
    """
    if class_name in FAST and compat.supported("tfma", *DISTRIBUTIONS):
        return __name__, FAST[class_name].__name__
    return "", class_name


def slice_key_arguments(slice_keys) -> tuple | None:
    """(slice_spec, eval_config, materialize) of TFMA's ExtractSliceKeys extractor, or None where TFMA is not the
    version this was written against (the caller then keeps TFMA's extractor as it is)."""
    if not compat.supported("tfma", *DISTRIBUTIONS):
        return None
    return tuple(slice_keys.ptransform._args)
