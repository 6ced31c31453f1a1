"""The tutorial's Keras model and the imbalance techniques: initial bias, class weights, oversampled batches."""

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

import contract
from compat import tensorflow as tensorflow_compat
from trainer.hparams import HParams

# Metrics recorded every epoch for train and validation; PR-AUC ("prc") drives early stopping.
EARLY_STOPPING_METRIC = "prc"


def initial_bias(pos: int, neg: int) -> float:
    """log(pos/neg): the output bias at which the untrained model predicts the class prior."""
    if pos <= 0 or neg <= 0:
        raise ValueError(f"the training split needs both classes, got {pos} frauds and {neg} normal rows")
    return math.log(pos / neg)


def class_weights(pos: int, neg: int) -> dict:
    """total/(2*neg) for normal rows and total/(2*pos) for frauds, so each class weighs half of the loss."""
    total = pos + neg
    return {0: total / (2.0 * neg), 1: total / (2.0 * pos)}


def oversampled_steps_per_epoch(neg: int, batch_size: int) -> int:
    """One epoch of the balanced stream: as many batches as it takes to draw each normal row once on average."""
    return max(1, math.ceil(2.0 * neg / batch_size))


def metrics() -> list:
    return [
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.AUC(name="prc", curve="PR"),
    ]


def model_inputs(hparams: HParams) -> tuple[str, ...]:
    """The Transform outputs the model takes, in order: the model features, then the time of day if asked for."""
    return contract.MODEL_INPUTS + (contract.TIME_OF_DAY_INPUTS if hparams.time_of_day else ())


def stacked(features, names=contract.MODEL_INPUTS) -> tf.Tensor:
    """The model's one input from the transformed features: the named inputs side by side, in that order.

    Args:
      features: transformed feature name -> [batch] or [batch, 1] tensor (the Transform layer's output).
      names: the model inputs (model_inputs(hparams)).

    Returns:
      A [batch, len(names)] float32 tensor.
    """
    return tf.concat([tf.reshape(tf.cast(features[n], tf.float32), [-1, 1]) for n in names], axis=1)


def build_model(hparams: HParams, output_bias: float) -> keras.Model:
    """(Dense(units, relu) [-> BatchNormalization] -> Dropout) x layers -> Dense(1, sigmoid) over the transformed
    model inputs.

    The model takes one [batch, inputs] tensor (see stacked) rather than a dict of one-column inputs: Keras then
    shuffles and slices one array per batch instead of thirty (docs/benchmarks.md, the levers table).

    Args:
      hparams: the layer width, dropout and learning rate.
      output_bias: the output layer's initial bias (log(pos/neg), or 0 for balanced batches).

    Returns:
      A compiled model taking a [batch, len(model_inputs(hparams))] float32 tensor.
    """
    tensorflow_compat.keras_runs_as_written()
    inputs = keras.layers.Input(shape=(len(model_inputs(hparams)),), name="inputs", dtype=tf.float32)
    x = inputs
    for i in range(hparams.layers):
        suffix = "" if i == 0 else f"_{i + 1}"
        x = keras.layers.Dense(hparams.units, activation="relu", name=f"hidden{suffix}")(x)
        if hparams.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm{suffix}")(x)
        x = keras.layers.Dropout(hparams.dropout, seed=hparams.seed + i, name=f"dropout{suffix}")(x)
    output = keras.layers.Dense(
        1,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(output_bias),
        name=contract.PROBABILITY_OUTPUT,
    )(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=metrics(),
    )
    return model


def oversampled_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """An endless stream of batches drawing frauds and normal rows 50/50 (tf.data sample_from_datasets).

    The shuffles move row indices, not rows: each class is a seeded, reshuffled, repeated stream of int64 indices,
    and each batch of indices gathers its rows from the [n, inputs] tensor. (Shuffling rows through a buffer the size
    of the data costs seconds an epoch on the full file.)
    """
    labels = y.reshape(-1)
    rows = tf.constant(x)
    targets = tf.constant(y)

    def repeated(mask, offset):
        indices = np.flatnonzero(mask).astype(np.int64)
        part = tf.data.Dataset.from_tensor_slices(indices)
        return part.shuffle(len(indices), seed=seed + offset, reshuffle_each_iteration=True).repeat()

    def gather(indices):
        return tf.gather(rows, indices), tf.gather(targets, indices)

    balanced = tf.data.Dataset.sample_from_datasets(
        [repeated(labels == 1, 1), repeated(labels == 0, 2)], weights=[0.5, 0.5], seed=seed
    )
    return balanced.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)
