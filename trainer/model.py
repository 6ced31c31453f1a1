"""The tutorial's Keras model and the imbalance techniques: initial bias, class weights, oversampled batches."""

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

import contract
from compat import tensorflow as tensorflow_compat
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec
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


@dataclasses.dataclass(frozen=True)
class Embedding:
    """A categorical feature fed as an embedding: its vocabulary index is column `column` of the model's input."""

    column: int
    vocabulary: int
    dim: int


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """What the model's one input holds: the Transform outputs side by side (`names`, `width` columns in all), the
    vocabulary indices of embedded categorical features last."""

    names: tuple[str, ...]
    width: int
    embeddings: tuple[Embedding, ...] = ()


def input_layout(hparams: HParams, spec: DatasetSpec = contract.DEFAULT_DATASET) -> InputLayout:
    """The Transform outputs the model takes, in order: the numeric features, their missing indicators, the one-hot
    categorical features, the time of day if asked for, then the indices of the embedded categorical features."""
    xf = contract.transformed_name
    names = [xf(f.name) for f in spec.numeric]
    names += [xf(f.name + dataset_spec.MISSING_SUFFIX) for f in spec.numeric if f.missing == "impute"]
    width = len(names)
    for f in spec.categorical:
        if not f.embedded:
            names.append(xf(f.name))
            width += f.width
    if hparams.time_of_day:
        names += contract.TIME_OF_DAY_INPUTS
        width += len(contract.TIME_OF_DAY_INPUTS)
    embeddings = []
    for f in spec.categorical:
        if f.embedded:
            names.append(xf(f.name + dataset_spec.EMBEDDING_SUFFIX))
            embeddings.append(Embedding(width, f.width, f.embedding_dim))
            width += 1
    return InputLayout(tuple(names), width, tuple(embeddings))


def model_inputs(hparams: HParams, spec: DatasetSpec = contract.DEFAULT_DATASET) -> tuple[str, ...]:
    """The names of input_layout(hparams, spec)."""
    return input_layout(hparams, spec).names


def stacked(features, names=contract.MODEL_INPUTS) -> tf.Tensor:
    """The model's one input from the transformed features: the named inputs side by side, in that order.

    Args:
      features: transformed feature name -> [batch], [batch, 1] or [batch, k] (one-hot) tensor (the Transform
        layer's output).
      names: the model inputs (model_inputs(hparams, spec)).

    Returns:
      A [batch, width] float32 tensor.
    """
    return tf.concat([_columns(tf.cast(features[n], tf.float32)) for n in names], axis=1)


def _columns(value: tf.Tensor) -> tf.Tensor:
    """[batch] or [batch, 1] -> [batch, 1]; [batch, k] as it is."""
    if value.shape.rank == 2 and value.shape[1] is not None:
        return value
    return tf.reshape(value, [-1, 1])


def build_model(hparams: HParams, output_bias: float, layout: InputLayout | None = None) -> keras.Model:
    """(Dense(units, relu) [-> BatchNormalization] -> Dropout) x layers -> Dense(1, sigmoid) over the transformed
    model inputs (each embedded categorical feature through its Embedding first).

    The model takes one [batch, inputs] tensor (see stacked) rather than a dict of one-column inputs: Keras then
    shuffles and slices one array per batch instead of thirty (docs/benchmarks.md, the levers table).

    Args:
      hparams: the layer width, dropout and learning rate.
      output_bias: the output layer's initial bias (log(pos/neg), or 0 for balanced batches).
      layout: the input's columns (input_layout); the default dataset's when None.

    Returns:
      A compiled model taking a [batch, layout.width] float32 tensor.
    """
    tensorflow_compat.keras_runs_as_written()
    layout = layout or input_layout(hparams)
    inputs = keras.layers.Input(shape=(layout.width,), name="inputs", dtype=tf.float32)
    x = _embedded(inputs, layout) if layout.embeddings else inputs
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


def _embedded(inputs, layout: InputLayout):
    """The dense columns, and each embedded feature's index column through its Embedding, side by side."""
    first = layout.embeddings[0].column
    parts = [keras.layers.Lambda(lambda t: t[:, :first], name="dense_inputs")(inputs)]
    for e in layout.embeddings:
        index = keras.layers.Lambda(lambda t, c=e.column: tf.cast(t[:, c], tf.int32), name=f"index_{e.column}")(inputs)
        vectors = keras.layers.Embedding(e.vocabulary, e.dim, name=f"embedding_{e.column}")(index)
        parts.append(vectors)
    return keras.layers.Concatenate(name="model_inputs")(parts)


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
