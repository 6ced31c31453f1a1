"""Scores a run's own splits with its own model: the raw examples ExampleGen wrote, through the serving signature."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

import contract
from datasets.spec import DatasetSpec


@dataclasses.dataclass
class Scored:
    """One split: labels, the model's probabilities and decisions, and the raw feature columns."""

    labels: np.ndarray
    probability: np.ndarray
    decision: np.ndarray
    columns: dict


def split_files(examples_uri: str, split: str) -> list[str]:
    """The files of one split of an Examples artifact."""
    return sorted(tf.io.gfile.glob(os.path.join(examples_uri, contract.split_dir(split), "*")))


def _raw_spec(dataset: DatasetSpec) -> dict:
    """The columns read back: the label, the time and the numeric features (one that may be missing as a sparse
    column, NaN where it is)."""
    spec = {dataset.time: tf.io.FixedLenFeature([], tf.float32 if dataset.time_format == "seconds" else tf.int64)}
    for feature in dataset.numeric:
        required = feature.missing == "forbid"
        spec[feature.name] = tf.io.FixedLenFeature([], tf.float32) if required else tf.io.VarLenFeature(tf.float32)
    spec[dataset.label] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def _values(values) -> np.ndarray:
    if isinstance(values, tf.SparseTensor):
        values = tf.sparse.to_dense(tf.sparse.reset_shape(values, [values.dense_shape[0], 1]), default_value=np.nan)
        return values.numpy()[:, 0]
    return values.numpy()


def load_model(model_uri: str):
    """The serving signature of a Trainer Model artifact (or of a pushed model's folder)."""
    path = os.path.join(model_uri, contract.SERVING_MODEL_DIR)
    loaded = tf.saved_model.load(path if tf.io.gfile.exists(path) else model_uri)
    return loaded, loaded.signatures[contract.SERVING_SIGNATURE]


def score_split(examples_uri: str, split: str, serve, dataset: DatasetSpec = contract.DEFAULT_DATASET) -> Scored:
    """Reads a split of ExampleGen's output and runs every example through the serving signature; the columns kept
    are the dataset's time and numeric features (NaN where missing)."""
    files = split_files(examples_uri, split)
    if not files:
        raise FileNotFoundError(f"no examples for split {split!r} under {examples_uri}")
    spec = _raw_spec(dataset)
    data = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(contract.READ_BATCH_SIZE)
    columns: dict[str, list] = {name: [] for name in spec}
    probability, decision = [], []
    for serialized in data:
        parsed = tf.io.parse_example(serialized, spec)
        for name, values in parsed.items():
            columns[name].append(_values(values))
        outputs = serve(**{contract.SERVING_INPUT: serialized})
        probability.append(outputs[contract.PROBABILITY_OUTPUT].numpy().ravel())
        decision.append(outputs[contract.DECISION_OUTPUT].numpy().ravel())
    cols = {name: np.concatenate(values) for name, values in columns.items()}
    return Scored(
        labels=cols.pop(dataset.label).astype(np.int64),
        probability=np.concatenate(probability),
        decision=np.concatenate(decision),
        columns=cols,
    )
