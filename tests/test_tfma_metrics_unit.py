"""The Evaluator's metric classes are TFMA's: the same computations and, example by example, the same accumulators."""

import json

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from compat import tfma as tfma_metrics
from pipeline.definition.eval_config import eval_config
from pipeline.definition.gates import GateConfig

PAIRS = [
    (tfma.metrics.ExampleCount(), tfma_metrics.FastExampleCount()),
    (tfma.metrics.AUC(), tfma_metrics.FastAUC()),
    (tfma.metrics.AUCPrecisionRecall(), tfma_metrics.FastAUCPrecisionRecall()),
    (tfma.metrics.RecallAtPrecision(precision=0.9), tfma_metrics.FastRecallAtPrecision(precision=0.9)),
    (tfma.metrics.TruePositives(thresholds=[0.5]), tfma_metrics.FastTruePositives(thresholds=[0.5])),
    (tfma.metrics.Precision(thresholds=[0.5]), tfma_metrics.FastPrecision(thresholds=[0.5])),
]


def _inputs(label, prediction, weight=None, model=""):
    labels, predictions = np.asarray(label), np.asarray(prediction)
    if model:
        labels, predictions = {model: labels}, {model: predictions}
    return metric_types.StandardMetricInputs(
        {constants.LABELS_KEY: labels, constants.PREDICTIONS_KEY: predictions, constants.EXAMPLE_WEIGHTS_KEY: weight}
    )


# The simple case (0/1 labels of either integer or float type, float and 0/1 integer predictions, the edges of the
# range), and cases that must take TFMA's general path: a fractional label, and a prediction of two values.
EXAMPLES = [
    _inputs([1], [0.73]),
    _inputs([0], np.array([0.2236], np.float32)),
    _inputs(np.array([1], np.int64), np.array([1], np.int64)),
    _inputs(np.array([0.0]), [0.0]),
    _inputs([1], [1.0]),
    _inputs([0], [0.99999]),
    _inputs([0.3], [0.5]),
    _inputs([1, 0], [0.4, 0.6]),
]


def _combined(computations, elements):
    outputs = {}
    for computation in computations:
        if isinstance(computation, metric_types.MetricComputation):
            combiner = computation.combiner
            accumulator = combiner.create_accumulator()
            for element in elements:
                accumulator = combiner.add_input(accumulator, element)
            outputs.update(combiner.extract_output(combiner.merge_accumulators([accumulator])))
    return outputs


def _comparable(outputs):
    return {str(key): repr(value) for key, value in outputs.items()}


@pytest.mark.parametrize(("tfma_metric", "fast"), PAIRS, ids=[type(p[0]).__name__ for p in PAIRS])
def test_each_class_accumulates_exactly_as_tfmas(tfma_metric, fast):
    theirs, ours = tfma_metric.computations(), fast.computations()
    assert [c.keys for c in ours] == [c.keys for c in theirs]
    fast_combiners = [type(c.combiner).__module__ for c in ours if isinstance(c, metric_types.MetricComputation)]
    assert tfma_metrics.__name__ in fast_combiners or any(
        getattr(c.combiner, "_extract_label_prediction_and_weight", None) is tfma_metrics._extract for c in ours
    ), "no combiner was given the short path"
    assert _comparable(_combined(ours, EXAMPLES)) == _comparable(_combined(theirs, EXAMPLES))


def test_each_model_of_a_comparison_is_looked_up_by_name():
    elements = [_inputs([label], [p], model="candidate") for label, p in ((1, 0.9), (0, 0.2), (0, 0.6))]
    for tfma_metric, fast in PAIRS:
        theirs, ours = (m.computations(model_names=["candidate"]) for m in (tfma_metric, fast))
        assert _comparable(_combined(ours, elements)) == _comparable(_combined(theirs, elements))


def test_only_the_simple_case_takes_the_short_path():
    simple = tfma_metrics.simple_label_and_prediction
    assert simple(_inputs([1], [0.7]), "", "") is not None
    assert simple(_inputs([0.3], [0.7]), "", "") is None
    assert simple(_inputs([1, 0], [0.7, 0.1]), "", "") is None
    assert simple(_inputs([2], [0.7]), "", "") is None
    assert simple(_inputs([1], np.array([b"a"])), "", "") is None


def test_the_eval_config_names_these_classes_for_every_confusion_matrix_metric():
    config = eval_config(GateConfig())
    metrics = [m for spec in config.metrics_specs for m in spec.metrics]
    fast = {m.class_name for m in metrics if m.module == tfma_metrics.__name__}
    assert fast == {
        "FastExampleCount",
        "FastAUC",
        "FastAUCPrecisionRecall",
        "FastRecallAtPrecision",
        "FastTruePositives",
        "FastFalsePositives",
        "FastTrueNegatives",
        "FastFalseNegatives",
        "FastPrecision",
        "FastRecall",
    }
    assert {m.class_name for m in metrics if not m.module} == set()
    # Each resolves to the project's class, not TFMA's of a similar name.
    for metric in metrics:
        if metric.module:
            instance = getattr(tfma_metrics, metric.class_name)(**json.loads(metric.config))
            assert isinstance(instance, tfma_metrics._Faster)
