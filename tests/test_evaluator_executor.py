"""The Evaluator's TFMA extractors: the extracts are trimmed to what slicing reads; with them and the project's metric
classes, a TFMA run gives stock TFMA's results on every slice."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import unbatch_extractor
from tfx import types
from tfx.types import standard_artifacts

import contract
from compat import tfma as tfma_metrics
from components.evaluator import extractors as tfma_extractors
from components.evaluator.component import Evaluator
from components.lib.tfma_results import read_metrics
from pipeline.definition.eval_config import eval_config
from pipeline.definition.gates import GateConfig

SLICES = frozenset(contract.SLICE_FEATURES)


def _column(n=3):
    return np.arange(n, dtype=np.float32)


def test_the_sliced_features_are_the_eval_configs_slicing_features():
    assert tfma_extractors.sliced_features(eval_config(GateConfig())) == SLICES
    config = tfma.EvalConfig(
        slicing_specs=[tfma.SlicingSpec(feature_values={"a": "1"})],
        cross_slicing_specs=[
            tfma.CrossSlicingSpec(
                baseline_spec=tfma.SlicingSpec(feature_keys=["b"]), slicing_specs=[tfma.SlicingSpec(feature_keys=["c"])]
            )
        ],
    )
    assert tfma_extractors.sliced_features(config) == {"a", "b", "c"}


def test_the_trim_keeps_the_sliced_features_labels_and_predictions_and_drops_the_rest():
    labels, predictions = {"probability": _column()}, {"probability": _column(), "decision": _column()}
    batch = {
        constants.INPUT_KEY: [b"a", b"b", b"c"],
        constants.FEATURES_KEY: {contract.LABEL: _column(), "V1": _column(), contract.AMOUNT_BUCKET: _column()},
        constants.TRANSFORMED_FEATURES_KEY: {name: _column() for name in (*contract.MODEL_INPUTS, *SLICES)},
        constants.LABELS_KEY: labels,
        constants.PREDICTIONS_KEY: predictions,
    }
    trimmed = tfma_extractors.trim(batch, SLICES)
    assert set(trimmed) == {
        constants.FEATURES_KEY,
        constants.TRANSFORMED_FEATURES_KEY,
        constants.LABELS_KEY,
        constants.PREDICTIONS_KEY,
    }
    assert set(trimmed[constants.FEATURES_KEY]) == {contract.AMOUNT_BUCKET}
    assert set(trimmed[constants.TRANSFORMED_FEATURES_KEY]) == SLICES
    assert trimmed[constants.LABELS_KEY] is labels and trimmed[constants.PREDICTIONS_KEY] is predictions
    # The input batch itself is left as it was (Beam may hand the same element to another consumer).
    assert constants.INPUT_KEY in batch and "V1" in batch[constants.FEATURES_KEY]


def test_the_trim_keeps_every_models_sliced_features():
    per_model = {model: {name: _column() for name in (*contract.MODEL_INPUTS, *SLICES)} for model in ("a", "b")}
    trimmed = tfma_extractors.trim({constants.TRANSFORMED_FEATURES_KEY: per_model}, SLICES)
    assert {model: set(f) for model, f in trimmed[constants.TRANSFORMED_FEATURES_KEY].items()} == {
        "a": SLICES,
        "b": SLICES,
    }


def test_the_trim_runs_just_before_the_unbatching():
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(feature_keys=[contract.AMOUNT_BUCKET])])
    stages = [e.stage_name for e in tfma_extractors.custom_extractors(None, config, None)]
    at = stages.index(tfma_extractors.TRIM_STAGE_NAME)
    assert stages[at + 1] == unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME
    assert stages.count(tfma_extractors.TRIM_STAGE_NAME) == 1


def test_the_evaluator_uses_them_unless_told_otherwise():
    channel = types.Channel(type=standard_artifacts.Examples)
    model = types.Channel(type=standard_artifacts.Model)
    assert Evaluator(examples=channel, model=model).exec_properties["module_path"] == tfma_extractors.__name__
    assert Evaluator(examples=channel, model=model, module_path="x.y").exec_properties["module_path"] == "x.y"


def _write(path, rng, n=400):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(n):
            label = int(rng.random() < 0.2)
            feature = {
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "prediction": tf.train.Feature(
                    float_list=tf.train.FloatList(value=[float(np.clip(0.4 * label + 0.6 * rng.random(), 0, 1))])
                ),
                "bucket": tf.train.Feature(bytes_list=tf.train.BytesList(value=[rng.choice([b"x", b"y", b"z"])])),
                "noise": tf.train.Feature(float_list=tf.train.FloatList(value=rng.random(3).tolist())),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _config(metrics):
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["bucket"])],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def _metrics(module=""):
    def config(name, **kwargs):
        return tfma.MetricConfig(
            class_name=("Fast" if module else "") + name, module=module, config=json.dumps({"name": name, **kwargs})
        )

    count = tfma.MetricConfig(class_name="ExampleCount")
    return [count, config("AUC"), config("AUCPrecisionRecall"), config("RecallAtPrecision", precision=0.5)] + [
        config(name, thresholds=[0.5]) for name in ("TruePositives", "FalsePositives", "Precision", "Recall")
    ]


# A whole TFMA run on the direct runner, against TFMA's own extractors and metrics: in the full suite.
@pytest.mark.against_tfx
def test_tfma_gives_the_same_results_per_slice_with_the_projects_extractors_and_metrics(tmp_path):
    data = tmp_path / "examples.tfrecord"
    _write(data, np.random.default_rng(7))
    stock, ours = _config(_metrics()), _config(_metrics(tfma_metrics.__name__))
    results = {}
    for name, config, extractors in (
        ("tfma", stock, None),
        ("ours", ours, tfma_extractors.custom_extractors(None, ours, None)),
    ):
        output = tmp_path / name
        tfma.run_model_analysis(
            eval_config=config, data_location=str(data), output_path=str(output), extractors=extractors
        )
        results[name] = read_metrics(str(output))
    assert set(results["tfma"]) == {"overall", "bucket=x", "bucket=y", "bucket=z"}
    assert set(results["tfma"]["overall"]["candidate"]) == {
        "example_count",
        "AUC",
        "AUCPrecisionRecall",
        "RecallAtPrecision",
        "TruePositives",
        "FalsePositives",
        "Precision",
        "Recall",
    }
    assert results["ours"] == results["tfma"]


@pytest.mark.parametrize("materialize", [False, True])
def test_slice_keys_are_tfmas_and_each_distinct_value_is_looked_up_once(materialize, monkeypatch):
    from tensorflow_model_analysis.extractors import slice_key_extractor
    from tensorflow_model_analysis.slicer import slicer_lib

    config = eval_config(GateConfig())
    specs = [slicer_lib.SingleSliceSpec(spec=spec) for spec in config.slicing_specs]
    values = [
        (b"0-10", b"00-04"),
        (b"10-100", b"00-04"),
        (b"0-10", b"00-04"),
        (b"0-10", b"20-24"),
        (b"10-100", b"00-04"),
    ]

    def extract(amount, hour, raw_amount):
        transformed = {contract.AMOUNT_BUCKET: np.array([amount]), contract.HOUR_BUCKET: np.array([hour])}
        return {
            constants.TRANSFORMED_FEATURES_KEY: transformed,
            constants.FEATURES_KEY: {contract.AMOUNT: np.array([raw_amount], np.float32)},
        }

    # The raw Amount differs in every example but one: only equal features may share keys.
    extracts = [extract(a, h, float(i)) for i, (a, h) in enumerate(values)] + [extract(*values[0], 0.0)]
    stock = slice_key_extractor.ExtractSliceKeysFn(config, materialize)
    looked_up = []
    tfmas = slice_key_extractor.ExtractSliceKeysFn.process
    monkeypatch.setattr(
        slice_key_extractor.ExtractSliceKeysFn,
        "process",
        lambda self, element, slice_spec: looked_up.append(1) or tfmas(self, element, slice_spec),
    )
    ours = tfma_extractors.SliceKeysOfSameValues(config, materialize)
    ours.setup()
    for element in extracts:
        (got,) = ours.process(element, specs)
        (expected,) = tfmas(stock, element, specs)
        assert got.keys() == expected.keys()
        assert list(got[constants.SLICE_KEY_TYPES_KEY]) == list(expected[constants.SLICE_KEY_TYPES_KEY])
        assert len(got[constants.SLICE_KEY_TYPES_KEY]) == len(specs)
        if materialize:
            assert got[constants.SLICE_KEYS_KEY] == expected[constants.SLICE_KEYS_KEY]
        assert constants.SLICE_KEY_TYPES_KEY not in element  # the input is left as it was
    assert len(looked_up) == len(extracts) - 1  # the last example repeats the first's features exactly


def test_the_evaluator_looks_slice_keys_up_through_the_memo():
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(feature_keys=[contract.AMOUNT_BUCKET])])
    extractors = tfma_extractors.custom_extractors(None, config, None)
    (slice_keys,) = [e for e in extractors if e.stage_name == "ExtractSliceKeys"]
    assert isinstance(slice_keys.ptransform.transform.fn, tfma_extractors.SliceKeysOfSameValues)
