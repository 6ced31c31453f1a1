"""preprocessing_fn: the Transform component loads it by dotted path (transform.preprocessing.preprocessing_fn).

Everything it does follows the dataset spec (datasets/, passed in the custom config as JSON; the ULB spec when
none is): each numeric feature as a z-score of the training split (after log(x + offset) for log_zscore), clipped,
its missing values imputed with the train split's mean and flagged by a 0/1 indicator input; each categorical
feature through a vocabulary learnt on the train split (top-k, minimum frequency, out-of-vocabulary buckets), one-hot
or as an index for an embedding; the label and the time passed through under their raw names; the time of day as
sine and cosine (a model input only when the Trainer's hparams ask for it); and the spec's slices, which are not
model inputs.
"""

import math

import tensorflow as tf
import tensorflow_transform as tft

import contract
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec


def _bucket_labels(values: tf.Tensor, edges, labels) -> tf.Tensor:
    index = tf.raw_ops.Bucketize(input=values, boundaries=list(edges))
    return tf.gather(tf.constant(labels), index)


def _dense(value, default) -> tf.Tensor:
    """A raw input as a [batch, 1] tensor: as it is when the schema makes it required, else the sparse input
    (a feature that may be missing) with `default` where it is."""
    if isinstance(value, tf.SparseTensor):
        return tft.sparse_tensor_to_dense_with_shape(value, [None, 1], default_value=default)
    return value


def hour_labels(hours: int) -> tuple[str, ...]:
    """The labels of an hour-of-day slice in windows of `hours`: 00-04h, 04-08h, ..."""
    return tuple(f"{h:02d}-{h + hours:02d}h" for h in range(0, 24, hours))


def _numeric(inputs: dict, spec: DatasetSpec, outputs: dict) -> None:
    """The numeric model inputs: z-scores of the train split, clipped; missing values imputed, with indicators."""
    columns = []
    for feature in spec.numeric:
        raw = inputs[feature.name]
        value = tf.cast(_dense(raw, math.nan), tf.float32)
        if feature.transform == "log_zscore":
            value = tf.math.log(value + feature.log_offset)
        if isinstance(raw, tf.SparseTensor):
            present = tf.logical_not(tf.math.is_nan(value))
            mean = tft.mean(tf.boolean_mask(value, present))
            value = tf.where(present, value, tf.cast(mean, tf.float32))
            name = contract.transformed_name(feature.name + dataset_spec.MISSING_SUFFIX)
            outputs[name] = 1.0 - tf.cast(present, tf.float32)
        columns.append(value)
    # One analyzer for all the numeric columns (a [batch, n] matrix, statistics per column) instead of one per
    # feature: TFT traces, plans and runs each analyzer's graph and side inputs separately, so Transform took as long
    # on the small sample as on the full file (docs/benchmarks.md). The statistics are accumulated in float64: a
    # column of a matrix is summed row after row, which in float32 missed the exact z-scores by up to 1.2e-5 on the
    # sample; in float64 each z-score is within float32's rounding of the exact one.
    matrix = tf.cast(tf.concat(columns, axis=1), tf.float64)
    clips = {f.clip for f in spec.numeric}
    clip = clips.pop() if len(clips) == 1 else tf.constant([[f.clip for f in spec.numeric]], tf.float64)
    scaled = tf.cast(tf.clip_by_value(tft.scale_to_z_score(matrix, elementwise=True), -clip, clip), tf.float32)
    for i, feature in enumerate(spec.numeric):
        outputs[contract.transformed_name(feature.name)] = scaled[:, i : i + 1]


def _text(inputs: dict, column: str) -> tf.Tensor:
    """A categorical or entity column as [batch, 1] strings, MISSING_TOKEN where it is missing."""
    raw = inputs[column]
    if raw.dtype != tf.string:
        values = raw.values if isinstance(raw, tf.SparseTensor) else raw
        text = tf.strings.as_string(values)
        raw = tf.SparseTensor(raw.indices, text, raw.dense_shape) if isinstance(raw, tf.SparseTensor) else text
    return _dense(raw, dataset_spec.MISSING_TOKEN)


def _categorical(inputs: dict, spec: DatasetSpec, outputs: dict) -> None:
    """The categorical model inputs: vocabulary indices one-hot ([batch, width]) or for an embedding ([batch, 1])."""
    for feature in spec.categorical:
        ids = tft.compute_and_apply_vocabulary(
            _text(inputs, feature.name),
            top_k=feature.top_k,
            frequency_threshold=feature.min_frequency,
            num_oov_buckets=feature.oov_buckets,
            vocab_filename=f"vocabulary_{feature.name}",
        )
        if feature.embedded:
            outputs[contract.transformed_name(feature.name + dataset_spec.EMBEDDING_SUFFIX)] = ids
        else:
            outputs[contract.transformed_name(feature.name)] = tf.one_hot(ids[:, 0], feature.width, dtype=tf.float32)


def _slices(inputs: dict, spec: DatasetSpec, hour: tf.Tensor, outputs: dict) -> None:
    for item in spec.slices:
        if item.kind == "bucket":
            value = tf.cast(_dense(inputs[item.column], 0.0), tf.float32)
            outputs[item.name] = _bucket_labels(value, item.edges, item.labels)
        elif item.kind == "hour_of_day":
            edges = [float(h) for h in range(item.hours, 24, item.hours)]
            outputs[item.name] = _bucket_labels(tf.cast(hour, tf.float32), edges, hour_labels(item.hours))
        else:
            outputs[item.name] = _text(inputs, item.column)


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Maps raw features to model inputs, the label and the slice features, by the dataset spec.

    Args:
      inputs: raw feature name -> [batch, 1] dense tensor for a required feature, a sparse tensor for one that may
        be missing (the schema decides).
      custom_config: the Transform component's custom_config: the dataset spec ("dataset", as JSON) and the code
        version (for caching only).

    Returns:
      The outputs by name: transformed_name(f) for each numeric feature (float32 z-score in [-clip, clip]) and its
        missing indicator, each categorical feature (one-hot, or its index + EMBEDDING_SUFFIX), the label and the
        time under their raw names, TIME_OF_DAY_INPUTS (float32 in [-1, 1]), and the spec's slices (strings).
    """
    spec = dataset_spec.of_config(custom_config)
    outputs = {}
    _numeric(inputs, spec, outputs)
    _categorical(inputs, spec, outputs)
    outputs[spec.label] = inputs[spec.label]
    # Not a model input: the Trainer reads how many days the eval split spans from it (the alert budget's days).
    outputs[spec.time] = tf.cast(inputs[spec.time], tf.float32)
    hour = tf.math.floormod(tf.cast(inputs[spec.time], tf.float64) / 3600.0, 24.0)
    angle = tf.cast(hour * (2.0 * math.pi / 24.0), tf.float32)
    sin_name, cos_name = contract.TIME_OF_DAY_INPUTS
    outputs[sin_name] = tf.math.sin(angle)
    outputs[cos_name] = tf.math.cos(angle)
    _slices(inputs, spec, hour, outputs)
    return outputs
