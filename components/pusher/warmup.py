"""TF Serving warm-up requests: real raw examples, sent as a client sends them, written into the pushed model.

TF Serving loads a version, replays the PredictionLogs of assets.extra/tf_serving_warmup_requests through it, and
only then serves it, so the first real requests do not pay for graph initialisation and the Transform layer's
lookups. The records are PredictRequests on the serving signature with batches of WARMUP_BATCH_SIZES rows, each a
serialized tf.Example of the eval split's raw features with the label removed (a client does not send it), then the
same rows on the raw-features signature (TF Serving's JSON REST API), one tensor a feature.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

import contract

# One request per batch size: TF Serving's batching and TensorFlow's kernels warm up per input shape.
WARMUP_BATCH_SIZES = (1, 8, 64)


def raw_examples(
    examples: list,
    split: str = contract.WARMUP_SPLIT,
    count: int = max(WARMUP_BATCH_SIZES),
    label: str = contract.LABEL,
) -> list:
    """The first count serialized tf.Examples of one split of an Examples artifact (gzip TFRecords), label removed.

    Raises:
      ValueError: the split has no examples.
    """
    files = sorted(fileio.glob(os.path.join(artifact_utils.get_split_uri(examples, split), "*")))
    records = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count):
        example = tf.train.Example.FromString(record.numpy())
        if label in example.features.feature:
            del example.features.feature[label]
        records.append(example.SerializeToString(deterministic=True))
    if not records:
        raise ValueError(f"no examples in split {split!r} to warm the model up with")
    return records


def requests(records: list, batch_sizes=WARMUP_BATCH_SIZES) -> list:
    """PredictionLogs for the serving signature: one request of each batch size, drawn in order from records
    (a batch larger than the records available takes them all)."""
    logs = []
    for size in batch_sizes:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = contract.SERVING_MODEL_NAME
        request.model_spec.signature_name = contract.SERVING_SIGNATURE
        request.inputs[contract.SERVING_INPUT].CopyFrom(tf.make_tensor_proto(records[:size], dtype=tf.string))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def feature_requests(records: list, inputs: dict, batch_sizes=WARMUP_BATCH_SIZES) -> list:
    """PredictionLogs for the raw-features signature (contract.FEATURES_SIGNATURE, what TF Serving's JSON REST API
    calls) from the same examples: each input (name -> dtype, as the Trainer exported them) a batch of values, NaN or
    "" where an example has none (the signature's missing value)."""
    examples = [tf.train.Example.FromString(r) for r in records]
    columns = {}
    for name, dtype in inputs.items():
        values = []
        for example in examples:
            feature = example.features.feature[name] if name in example.features.feature else None
            found = None
            if feature is not None:
                found = list(feature.float_list.value) or list(feature.int64_list.value)
                found = found or list(feature.bytes_list.value)
            missing = float("nan") if dtype.startswith("float") else (b"" if dtype == "string" else 0)
            values.append(found[0] if found else missing)
        columns[name] = (values, tf.as_dtype(dtype))
    logs = []
    for size in batch_sizes:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = contract.SERVING_MODEL_NAME
        request.model_spec.signature_name = contract.FEATURES_SIGNATURE
        for name, (values, dtype) in columns.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values[:size], dtype=dtype))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write(model_dir: str, logs: list) -> str:
    """Writes the PredictionLogs as the (uncompressed) TFRecord file TF Serving reads; returns its path."""
    path = os.path.join(model_dir, contract.WARMUP_REQUESTS)
    fileio.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read(model_dir: str) -> list:
    """The PredictionLogs of a model's warm-up file."""
    path = os.path.join(model_dir, contract.WARMUP_REQUESTS)
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
