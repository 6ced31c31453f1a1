"""TF Serving warm-up requests: real raw examples of one split, label removed, one request per batch size."""

import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

import contract
from components.pusher import warmup


def _example(i: int, label: int) -> bytes:
    features = {
        name: tf.train.Feature(float_list=tf.train.FloatList(value=[i + 0.5])) for name in contract.RAW_FLOAT_FEATURES
    }
    features[contract.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


@pytest.fixture
def examples(tmp_path):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "examples")
    artifact.split_names = '["train", "eval"]'
    for split, rows in (("train", range(100, 103)), ("eval", range(10))):
        folder = os.path.join(artifact.uri, contract.split_dir(split))
        os.makedirs(folder)
        with tf.io.TFRecordWriter(os.path.join(folder, "data.gz"), options="GZIP") as writer:
            for i in rows:
                writer.write(_example(i, i % 2))
    return [artifact]


def test_warm_up_examples_are_the_splits_rows_without_the_label(examples):
    records = warmup.raw_examples(examples, "eval", count=4)
    assert len(records) == 4
    for i, record in enumerate(records):
        feature = tf.train.Example.FromString(record).features.feature
        assert set(feature) == set(contract.RAW_FLOAT_FEATURES)
        assert feature[contract.AMOUNT].float_list.value[0] == i + 0.5
    with pytest.raises(ValueError, match="test"):
        warmup.raw_examples(examples, "test")


def test_requests_round_trip_through_the_warm_up_file(examples, tmp_path):
    records = warmup.raw_examples(examples, "eval")
    assert len(records) == 10  # fewer rows than asked for: all of them
    path = warmup.write(str(tmp_path / "model"), warmup.requests(records, batch_sizes=(1, 8, 64)))
    assert path == str(tmp_path / "model" / "assets.extra" / "tf_serving_warmup_requests")
    logs = warmup.read(str(tmp_path / "model"))
    sizes = []
    for log in logs:
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == ("fraud", "serving_default")
        batch = tf.make_ndarray(request.inputs[contract.SERVING_INPUT])
        assert list(batch) == records[: len(batch)]
        sizes.append(len(batch))
    assert sizes == [1, 8, 10]


def test_the_raw_features_requests_hold_each_input_by_name_and_mark_missing_values():
    def example(**values):
        out = tf.train.Example()
        for name, value in values.items():
            feature = out.features.feature[name]
            if isinstance(value, str):
                feature.bytes_list.value.extend([value.encode()] if value else [])
            else:
                feature.float_list.value.extend([] if value is None else [value])
        return out.SerializeToString()

    records = [example(amount=12.5, channel="online"), example(amount=None, channel="")]
    logs = warmup.feature_requests(records, {"amount": "float32", "channel": "string"}, batch_sizes=(1, 2))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [contract.FEATURES_SIGNATURE] * 2
    inputs = logs[1].predict_log.request.inputs
    amount = tf.make_ndarray(inputs["amount"])
    assert amount.dtype == "float32" and amount[0] == 12.5 and amount[1] != amount[1]  # NaN: missing
    assert list(tf.make_ndarray(inputs["channel"])) == [b"online", b""]
    assert len(tf.make_ndarray(logs[0].predict_log.request.inputs["amount"])) == 1
