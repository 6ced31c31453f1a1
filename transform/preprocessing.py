"""preprocessing_fn: the Transform component loads it by dotted path (transform.preprocessing.preprocessing_fn).

Drops Time from the model inputs, takes log(Amount + 0.001), scales every model input to a z-score with the
training split's mean and standard deviation (the Transform component analyzes the train split only), clips to
[-5, 5], passes the label through under its raw name, adds the time of day as sine and cosine (a model input
only when the Trainer's hparams ask for it), and two slice features that are not model inputs.
"""

import math

import tensorflow as tf
import tensorflow_transform as tft

import contract


def _bucket_labels(values: tf.Tensor, edges, labels) -> tf.Tensor:
    index = tf.raw_ops.Bucketize(input=values, boundaries=list(edges))
    return tf.gather(tf.constant(labels), index)


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Maps raw features to model inputs, the label and the slice features.

    Args:
      inputs: raw feature name -> dense tensor of shape [batch, 1] (the schema fixes the shape).
      custom_config: the Transform component's custom_config; it carries the code version for caching only.

    Returns:
      The outputs by name: transformed_name(f) for each model feature (float32 z-score in [-CLIP, CLIP]), the label
        and Time under their raw names, TIME_OF_DAY_INPUTS (float32 in [-1, 1]), and the string slice features
        AMOUNT_BUCKET and HOUR_BUCKET.
    """
    del custom_config
    outputs = {}
    columns = []
    for name in contract.MODEL_FEATURES:
        value = tf.cast(inputs[name], tf.float32)
        if name == contract.AMOUNT:
            value = tf.math.log(value + contract.AMOUNT_LOG_OFFSET)
        columns.append(value)
    # One analyzer for all 29 columns (a [batch, 29] matrix, statistics per column) instead of one per feature:
    # TFT traces, plans and runs each analyzer's graph and side inputs separately, so Transform took as long on the
    # small sample as on the full file (docs/benchmarks.md). The statistics are accumulated in float64: a column
    # of a matrix is summed row after row, which in float32 missed the exact z-scores by up to 1.2e-5 on the sample; in
    # float64 each z-score is within float32's rounding of the exact one.
    matrix = tf.cast(tf.concat(columns, axis=1), tf.float64)
    scaled = tf.cast(
        tf.clip_by_value(tft.scale_to_z_score(matrix, elementwise=True), -contract.CLIP, contract.CLIP), tf.float32
    )
    for i, name in enumerate(contract.MODEL_FEATURES):
        outputs[contract.transformed_name(name)] = scaled[:, i : i + 1]
    outputs[contract.LABEL] = inputs[contract.LABEL]
    # Not a model input: the Trainer reads how many days the eval split spans from it (the alert budget's days).
    outputs[contract.TIME] = tf.cast(inputs[contract.TIME], tf.float32)
    outputs[contract.AMOUNT_BUCKET] = _bucket_labels(
        tf.cast(inputs[contract.AMOUNT], tf.float32), contract.AMOUNT_EDGES, contract.AMOUNT_LABELS
    )
    hour = tf.math.floormod(tf.cast(inputs[contract.TIME], tf.float64) / 3600.0, 24.0)
    angle = tf.cast(hour * (2.0 * math.pi / 24.0), tf.float32)
    sin_name, cos_name = contract.TIME_OF_DAY_INPUTS
    outputs[sin_name] = tf.math.sin(angle)
    outputs[cos_name] = tf.math.cos(angle)
    outputs[contract.HOUR_BUCKET] = _bucket_labels(
        tf.cast(hour, tf.float32),
        [float(h) for h in range(contract.HOURS_PER_BUCKET, 24, contract.HOURS_PER_BUCKET)],
        contract.HOUR_LABELS,
    )
    return outputs
