"""The pieces of `fraud-pipeline predict` that need no model: the contract on headers and rows, the example
encoder, finding the newest model, and the command's help."""

import os
import subprocess

import numpy as np
import pytest

import contract
from components.lib import csv_contract
from components.lib.rejection import DataRejectedError
from pipeline.scoring import predict
from pipeline.scoring import rows as rows_lib
from tests.support import CLI


def test_the_encoder_gives_the_examples_tf_would():
    import tensorflow as tf

    values = np.random.default_rng(0).normal(size=(7, len(rows_lib.FEATURES))).astype(np.float32)
    encoded = rows_lib.ExampleEncoder().encode(values)
    spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in rows_lib.FEATURES}
    ours = tf.io.parse_example(tf.constant(encoded), spec)
    reference = []
    for row in values:
        example = tf.train.Example()
        for name, value in zip(rows_lib.FEATURES, row):
            example.features.feature[name].float_list.value.append(value)
        reference.append(example.SerializeToString())
    theirs = tf.io.parse_example(tf.constant(reference), spec)
    for name in rows_lib.FEATURES:
        np.testing.assert_array_equal(ours[name].numpy(), theirs[name].numpy())
    assert len(encoded[0]) == len(reference[0])


def test_a_header_must_hold_every_feature_and_nothing_else():
    header = list(contract.RAW_COLUMNS)
    columns = csv_contract.scoring_columns
    assert columns("f.csv", header)[1] == header.index(contract.LABEL)
    assert columns("f.csv", [c for c in header if c != contract.LABEL])[1] is None
    with pytest.raises(DataRejectedError, match=r"f.csv, line 1 \(header\): lacks V7"):
        columns("f.csv", [c for c in header if c != "V7"])
    with pytest.raises(DataRejectedError, match="does not know: Merchant"):
        columns("f.csv", header + ["Merchant"])


@pytest.mark.parametrize(
    "change, problem",
    [
        (("V2", "abc"), "column V2: 'abc' is not a number"),
        (("Amount", "inf"), "column Amount: 'inf' is not a finite number"),
        (("Time", ""), "column Time: '' is not a number"),
        (("Class", "2"), "column Class: '2' is not 0 or 1"),
    ],
)
def test_the_careful_reader_names_the_column(tmp_path, change, problem):
    header = list(contract.RAW_COLUMNS)
    good = ["1.5"] * len(rows_lib.FEATURES) + ["0"]
    bad = list(good)
    bad[header.index(change[0])] = change[1]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(",".join(r) for r in (header, good, bad, good)) + "\n")
    with pytest.raises(DataRejectedError, match=f"rows.csv, line 3: {problem}"):
        list(rows_lib.batches([str(path)], rows_lib.Rejects(None)))
    rejects = rows_lib.Rejects(str(tmp_path / "rejects.csv"))
    batches = list(rows_lib.batches([str(path)], rejects))
    rejects.close()
    assert rejects.count == 1 and [b.lines.tolist() for b in batches] == [[2, 4]]


def test_the_fast_reader_takes_clean_files_and_keeps_the_lines(tmp_path):
    header = list(contract.RAW_COLUMNS)
    rows = [[str(i + j / 10) for j in range(len(rows_lib.FEATURES))] + [str(i % 2)] for i in range(10)]
    path = tmp_path / "clean.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    (batch,) = list(rows_lib.batches([str(path)], rows_lib.Rejects(None), size=100))
    assert batch.lines.tolist() == list(range(2, 12)) and batch.labels == [r[-1] for r in rows]
    np.testing.assert_array_equal(batch.values, np.array([[float(c) for c in r[:-1]] for r in rows]))
    # Batches split at the size asked for, in order.
    assert [len(b) for b in rows_lib.batches([str(path)], rows_lib.Rejects(None), size=4)] == [4, 4, 2]


def test_the_model_is_the_newest_complete_version(tmp_path):
    with pytest.raises(predict.ModelNotFoundError, match="no pushed model"):
        predict.newest_model(str(tmp_path))
    for version in ("9", "10", "2", "not-a-version"):
        (tmp_path / version / "variables").mkdir(parents=True)
        (tmp_path / version / "saved_model.pb").write_bytes(b"m")
        (tmp_path / version / "variables" / "variables.index").write_bytes(b"i")
    warnings = []
    assert predict.newest_model(str(tmp_path), warnings.append).name == "10" and warnings == []
    # A newer version still being copied (no saved_model.pb yet) is passed over, as TF Serving passes it over.
    (tmp_path / "11" / "variables").mkdir(parents=True)
    assert predict.newest_model(str(tmp_path), warnings.append).name == "10"
    assert len(warnings) == 1 and f"{tmp_path / '11'} is not a complete model" in warnings[0]


def test_predict_help_documents_every_flag():
    proc = subprocess.run([str(CLI), "predict", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for flag in ("--data", "--model", "--output", "--to", "--rejects", "--batch-size"):
        assert flag in proc.stdout, flag
    missing = subprocess.run([str(CLI), "predict", "--data", "x.csv"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--to" in missing.stderr
    # As for run: a --data that is not there is a usage error.
    nowhere = subprocess.run(
        [str(CLI), "predict", "--data", "no/such.csv", "--to", "s.csv"], capture_output=True, text=True, timeout=60
    )
    assert nowhere.returncode == 2 and "--data no/such.csv: no such file or folder" in nowhere.stderr


def test_a_specs_rows_keep_their_time_as_it_was_read(tmp_path):
    """predict writes a spec's time column as the file had it: an ISO date-time stays one (not epoch seconds), while
    the batch's values hold the seconds the skew and the record use."""
    from datasets import spec as dataset_spec

    spec = dataset_spec.load(os.path.join(contract.CONTRACT_DIR, "datasets", "simulated", "dataset.yaml"))
    header = "transaction_id,tx_datetime,customer_id,terminal_id,amount,card_age_days,merchant_category,channel,country"
    times = ["2026-03-01T08:15:00", "2026-03-01 09:00:00Z", "2026-03-01T10:30:00+02:00"]
    lines = [header] + [f"tx{i},{t},c1,t1,12.5,30,grocery,online,FR" for i, t in enumerate(times)]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    rejects = rows_lib.Rejects(None)
    (batch,) = rows_lib.spec_batches([str(path)], rejects, spec, key="transaction_id")
    assert batch.times_read == times
    assert batch.values[:, 0].tolist() == [float(dataset_spec.iso_seconds(t)) for t in times]
    halves = list(batch.split(2))
    assert [h.times_read for h in halves] == [times[:2], times[2:]]
