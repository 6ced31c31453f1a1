"""The Evaluator's in-process evaluation (components/evaluator/in_process.py), part by part against TFMA's own code:
each column-wise accumulator against TFMA's combiner fed one example at a time, the slices against TFMA's slicer, and
what it leaves to TFX's Beam executor. Whole evaluations are compared with TFMA's Beam pipeline on the shared runs
(test_gates_e2e.py, test_your_data_e2e.py)."""

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as tfma_evaluator
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.slicer import slicer_lib

from compat import tfma_columns
from components.evaluator import in_process
from components.evaluator.in_process import Declined
from datasets import spec as dataset_spec
from pipeline.definition.eval_config import eval_config
from pipeline.definition.gates import GateConfig
from tests.support import ROOT

SIMULATED = ROOT / "datasets" / "simulated" / "dataset.yaml"


def _computations(config, has_baseline=False):
    config = tfma.utils.update_eval_config_with_defaults(config, has_baseline=has_baseline, rubber_stamp=True)
    return config, tfma_evaluator._filter_and_separate_computations(  # noqa: SLF001
        metric_specs.to_computations(config.metrics_specs, eval_config=config)
    )


@pytest.mark.parametrize("dataset", ["ulb", "simulated"])
@pytest.mark.parametrize("has_baseline", [False, True])
def test_every_combiner_of_the_pipelines_eval_configs_is_computed_in_process(dataset, has_baseline):
    spec = dataset_spec.load(str(SIMULATED)) if dataset == "simulated" else None
    config = eval_config(GateConfig(), spec) if spec else eval_config(GateConfig())
    config, computations = _computations(config, has_baseline)
    in_process._check_config(config)  # noqa: SLF001
    found = tfma_columns.computations(config, own=in_process._is_card_precision)  # noqa: SLF001
    kinds = {kind for _, kind in found.combiners}
    assert kinds == ({"count", "histogram", "matrix", "own"} if spec else {"count", "histogram", "matrix"})
    assert len(found.combiners) == len(computations.non_derived_computations)


def _inputs(label, prediction):
    return metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=np.array([prediction], np.float32), example_weights=None
    )


def _tfma_accumulator(combiner, labels, predictions):
    accumulator = combiner.create_accumulator()
    for label, prediction in zip(labels, predictions):
        accumulator = combiner.add_input(accumulator, _inputs(label, prediction))
    return accumulator


def _scores(rng, n=5000):
    # Predictions at and next to the histogram's bucket edges and the decision threshold, and at 0 and 1.
    edges = np.array([0.0, 1.0, 0.5, 0.1, 0.0001, 0.9999, 0.12345], np.float32)
    near = np.concatenate([np.nextafter(edges, np.float32(2)), np.nextafter(edges, np.float32(-1))])
    values = np.concatenate([edges, near.clip(0, 1), rng.random(n).astype(np.float32)])
    labels = (rng.random(values.size) < 0.2).astype(np.int64)
    return labels, values


@pytest.mark.parametrize(
    "metric",
    [
        tfma.metrics.AUC(),
        tfma.metrics.AUCPrecisionRecall(),
        tfma.metrics.RecallAtPrecision(precision=0.75),
        tfma.metrics.TruePositives(thresholds=[0.5]),
        tfma.metrics.Precision(thresholds=[0.5]),
        tfma.metrics.ExampleCount(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_each_accumulator_and_its_metrics_are_tfmas_combiner_fed_an_example_at_a_time(metric):
    rng = np.random.default_rng(7)
    labels, predictions = _scores(rng)
    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="y", prediction_key="p")])
    computations = tfma_evaluator._filter_and_separate_computations(  # noqa: SLF001
        metric.computations(eval_config=config, model_names=[""], output_names=[""])
    )
    theirs, ours = {}, {}
    for computation in computations.non_derived_computations:
        combiner = computation.combiner
        kind = tfma_columns._kind(combiner, lambda c: False)  # noqa: SLF001
        expected = _tfma_accumulator(combiner, labels, predictions)
        if kind == "count":
            got = tfma_columns.count(combiner, labels.size)
        elif kind == "histogram":
            got = tfma_columns.histogram(combiner, labels.astype(float), predictions.astype(float))
        else:
            got = tfma_columns.matrices(combiner, labels.astype(float), predictions.astype(float))
        assert combiner.extract_output(got) == combiner.extract_output(expected)
        theirs.update(combiner.extract_output(expected))
        ours.update(combiner.extract_output(got))
    for computation in computations.derived_computations:
        theirs.update(computation.result(theirs))
        ours.update(computation.result(ours))
    public = {k: v for k, v in ours.items() if not k.name.startswith("_")}
    assert public and public == {k: v for k, v in theirs.items() if not k.name.startswith("_")}


def test_a_histogram_bucket_sums_in_the_examples_order():
    # Two predictions in one bucket whose sum depends on the order: TFMA adds them as they come.
    combiner = next(
        c.combiner
        for c in tfma.metrics.AUC().computations(eval_config=tfma.EvalConfig(), model_names=[""], output_names=[""])
        if hasattr(c, "combiner") and c.combiner is not None
    )
    predictions = np.array([0.30001, 0.300011, 0.300012], np.float32)
    labels = np.array([0, 1, 1])
    assert combiner.extract_output(
        tfma_columns.histogram(combiner, labels.astype(float), predictions.astype(float))
    ) == combiner.extract_output(_tfma_accumulator(combiner, labels, predictions))


class _Columns:
    def __init__(self, transformed: dict, raw: dict, size: int):
        self.transformed, self.raw, self.size = transformed, raw, size


class _Spec:
    def __init__(self, name):
        self.name = name


class _Model:
    def __init__(self, name):
        self.spec = _Spec(name)


def test_slices_are_tfmas_slicer_looking_in_each_models_transformed_features_then_the_raw_ones():
    rng = np.random.default_rng(3)
    n = 200
    buckets = np.array([b"0-10", b"10-50", b"50-200"], object)
    candidate = {"amount_bucket": buckets[rng.integers(0, 3, n)], "hour": rng.integers(0, 4, n)}
    baseline = {"amount_bucket": buckets[rng.integers(0, 3, n)]}  # another Transform: other buckets for some rows
    raw = {"channel": np.array([b"web", b"pos"], object)[rng.integers(0, 2, n)], "amount_bucket": buckets[:1].repeat(n)}
    columns = _Columns({"candidate": candidate, "baseline": baseline}, raw, n)
    models = [_Model("candidate"), _Model("baseline")]
    specs = [
        tfma.SlicingSpec(),
        tfma.SlicingSpec(feature_keys=["amount_bucket"]),
        tfma.SlicingSpec(feature_keys=["channel"]),
        tfma.SlicingSpec(feature_keys=["hour", "channel"]),
    ]
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate"), tfma.ModelSpec(name="baseline")], slicing_specs=specs
    )
    masks = in_process._slice_masks(config, columns, models)  # noqa: SLF001
    single = [slicer_lib.SingleSliceSpec(spec=s) for s in specs]
    expected: dict = {}
    for i in range(n):
        transformed = [{k: np.array([v[i]]) for k, v in features.items()} for features in (candidate, baseline)]
        keys = set(
            slicer_lib.get_slices_for_features_dicts(transformed, {k: np.array([v[i]]) for k, v in raw.items()}, single)
        )
        for key in keys:
            expected.setdefault(key, np.zeros(n, bool))[i] = True
    assert masks.keys() == expected.keys()
    for key, mask in expected.items():
        assert np.array_equal(masks[key], mask), key
    assert ("channel", "web") in {k for key in masks for k in key}  # a raw feature, read as text


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda c: c.cross_slicing_specs.add(), "cross slicing"),
        (
            lambda c: (
                c.options.compute_confidence_intervals.SetInParent()
                or setattr(c.options.compute_confidence_intervals, "value", True)
            ),
            "confidence intervals",
        ),
        (lambda c: setattr(c.options.min_slice_size, "value", 5), "minimum slice size"),
        (lambda c: setattr(c.metrics_specs[0], "query_key", "q"), "query key"),
        (lambda c: c.slicing_specs.add(feature_values={"a": "1"}), "feature values"),
        (lambda c: setattr(c.model_specs[0], "example_weight_key", "w"), "example weights"),
        (lambda c: setattr(c.model_specs[0], "model_type", tfma.TF_KERAS), "plain SavedModel"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_what_tfmas_pipeline_is_left_to_do(change, reason):
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config(GateConfig()))
    change(config)
    with pytest.raises(Declined, match=reason):
        in_process._check_config(config)  # noqa: SLF001


def test_combiners_it_does_not_know_or_weighted_ones_are_left_to_tfma():
    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="y")])
    weighted = tfma.metrics.ExampleCount().computations(
        eval_config=config, model_names=[""], output_names=[""], example_weighted=True
    )
    with pytest.raises(tfma_columns.Unsupported, match="weighted"):
        tfma_columns._kind(weighted[0].combiner, lambda c: False)  # noqa: SLF001
    mean_label = tfma.metrics.MeanLabel().computations(eval_config=config, model_names=[""], output_names=[""])
    with pytest.raises(tfma_columns.Unsupported, match="not made from columns"):
        for computation in mean_label:
            if isinstance(computation, metric_types.MetricComputation):
                tfma_columns._kind(computation.combiner, lambda c: False)  # noqa: SLF001
    weighted_auc = tfma.metrics.AUC().computations(
        eval_config=config, model_names=[""], output_names=[""], example_weighted=True
    )
    with pytest.raises(tfma_columns.Unsupported, match="weights"):
        tfma_columns._kind(weighted_auc[0].combiner, lambda c: False)  # noqa: SLF001


def test_a_label_other_than_0_and_1_or_a_nan_prediction_is_left_to_tfma():
    spec = tfma.ModelSpec(name="", label_key="y", prediction_key="p")
    key = metric_types.MetricKey(name="auc")
    for labels, predictions, reason in (
        (np.array([0, 2]), np.array([0.1, 0.2], np.float32), "0 and 1"),
        (np.array([0, 1]), np.array([0.1, np.nan], np.float32), "NaN"),
    ):
        columns = _Columns({"": {}}, {"y": labels}, 2)
        columns.outputs = {"": {"p": predictions}}
        with pytest.raises(Declined, match=reason):
            in_process._labels_and_predictions(key, columns, {"": spec})  # noqa: SLF001
