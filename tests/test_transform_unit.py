"""preprocessing_fn run through tensorflow_transform.beam, against a numpy reference: train rows far from zero, eval
rows from elsewhere."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

import contract
from tests.support import FIXTURE, read_csv_rows
from transform.preprocessing import preprocessing_fn


def _rows(csv_rows, header):
    rows = []
    for r in csv_rows:
        row = {name: [float(r[header.index(name)])] for name in contract.RAW_FLOAT_FEATURES}
        row[contract.LABEL] = [int(r[header.index(contract.LABEL)])]
        rows.append(row)
    return rows


def _column(rows, name):
    return np.array([r[name][0] for r in rows], dtype=np.float64)


def _far_from_zero_rows(n: int, seed: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """n rows of the raw features: V1 near 100,000 (a float32 running sum of it would move the mean, and every
    z-score, by far more than 1e-6), Amount and Time in their ranges, the rest standard normal."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(size=n).astype(np.float32) for name in contract.RAW_FLOAT_FEATURES}
    columns["V1"] = (1e5 + rng.normal(size=n)).astype(np.float32)
    columns[contract.AMOUNT] = rng.uniform(0, 100, size=n).astype(np.float32)
    columns[contract.TIME] = rng.uniform(0, 172_800, size=n).astype(np.float32)
    labels = (rng.random(n) < 0.1).astype(np.int64)
    rows = [{name: [float(values[i])] for name, values in columns.items()} for i in range(n)]
    for row, label in zip(rows, labels):
        row[contract.LABEL] = [int(label)]
    return rows, columns


@pytest.mark.slow
def test_preprocessing_matches_numpy_with_train_statistics_only(tmp_path):
    """One Analyze-and-Transform: the train rows' own z-scores exact in float64 on a column far from zero, and eval
    rows from elsewhere (their statistics differ) transformed with the train statistics alone."""
    train, columns = _far_from_zero_rows(500, 0)
    # An extreme row in train drives clipping.
    train[0]["V2"] = [1e4]
    csv_rows = read_csv_rows(FIXTURE)
    header = csv_rows[0]
    evaluation = _rows(csv_rows[-30:], header)
    evaluation[0]["V2"] = [-1e4]
    evaluation[1]["Amount"] = [0.0]

    spec = {name: tf.io.FixedLenFeature([1], tf.float32) for name in contract.RAW_FLOAT_FEATURES}
    spec[contract.LABEL] = tf.io.FixedLenFeature([1], tf.int64)
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (transformed_train, _), transform_fn = (train, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        transformed, _ = ((evaluation, metadata), transform_fn) | tft_beam.TransformDataset()

    # The statistics are accumulated in float64.
    raw = columns["V1"].astype(np.float64)
    expected = np.clip((raw - raw.mean()) / raw.std(), -contract.CLIP, contract.CLIP)
    got = np.array([float(np.ravel(r[contract.transformed_name("V1")])[0]) for r in transformed_train])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert float(np.ravel(transformed_train[0][contract.transformed_name("V2")])[0]) == contract.CLIP

    assert len(transformed) == len(evaluation)
    # Time is no model input: it passes through under its own name (the Trainer reads the eval split's days from it).
    assert contract.transformed_name(contract.TIME) not in transformed[0]
    assert [row[contract.TIME][0] for row in transformed] == pytest.approx([r[contract.TIME][0] for r in evaluation])
    for name in contract.MODEL_FEATURES:
        raw_train, raw_eval = _column(train, name), _column(evaluation, name)
        if name == contract.AMOUNT:
            raw_train = np.log(raw_train + contract.AMOUNT_LOG_OFFSET)
            raw_eval = np.log(raw_eval + contract.AMOUNT_LOG_OFFSET)
        expected = np.clip((raw_eval - raw_train.mean()) / raw_train.std(), -5, 5)
        got = np.array([float(np.ravel(r[contract.transformed_name(name)])[0]) for r in transformed])
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=name)
    got_v2 = float(np.ravel(transformed[0][contract.transformed_name("V2")])[0])
    assert got_v2 == -5.0  # clipped

    labels = [int(np.ravel(r[contract.LABEL])[0]) for r in transformed]
    assert labels == [r[contract.LABEL][0] for r in evaluation]

    amounts = _column(evaluation, contract.AMOUNT)
    expected_amount = [contract.AMOUNT_LABELS[i] for i in np.digitize(amounts, contract.AMOUNT_EDGES)]
    hours = (_column(evaluation, contract.TIME) / 3600.0) % 24
    expected_hour = [contract.HOUR_LABELS[int(h // contract.HOURS_PER_BUCKET)] for h in hours]
    assert [_text(r[contract.AMOUNT_BUCKET]) for r in transformed] == expected_amount
    assert [_text(r[contract.HOUR_BUCKET]) for r in transformed] == expected_hour


def _text(value):
    value = np.ravel(value)[0]
    return value.decode() if isinstance(value, bytes) else str(value)
