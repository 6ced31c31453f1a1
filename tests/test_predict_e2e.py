"""`fraud-pipeline predict`: bulk scoring with the pushed model equals the serving signature and the Evaluator."""

import csv
import gzip
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import contract
from pipeline.definition import status as st
from tests.support import CLI, raw_examples, shifted_copy


def _predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "predict", *args], capture_output=True, text=True, timeout=600)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def test_split(time_run, tmp_path_factory):
    """The time run's test split as a CSV (header RAW_COLUMNS, one row per serialized example, in order)."""
    import tensorflow as tf

    serialized = raw_examples(time_run, "test")
    path = tmp_path_factory.mktemp("predict") / "test_split.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(contract.RAW_COLUMNS)
        for record in serialized:
            feature = tf.train.Example.FromString(record).features.feature
            writer.writerow(
                [repr(feature[c].float_list.value[0]) for c in contract.RAW_FLOAT_FEATURES]
                + [feature[contract.LABEL].int64_list.value[0]]
            )
    return path, serialized


@pytest.mark.e2e
def test_predict_equals_the_serving_signature_and_the_evaluator(time_run, test_split, tmp_path):
    import tensorflow as tf

    path, serialized = test_split
    scores = tmp_path / "scores.csv"
    proc = _predict("--data", str(path), "--output", str(time_run.output), "--to", str(scores))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(scores)
    assert [int(r["line"]) for r in rows] == list(range(2, len(serialized) + 2))
    model = time_run.summary["pushed_model"]
    assert {r["model_version"] for r in rows} == {model.rstrip("/").rsplit("/", 1)[-1]}
    serve = tf.saved_model.load(model).signatures[contract.SERVING_SIGNATURE]
    expected = serve(**{contract.SERVING_INPUT: tf.constant(serialized)})
    probabilities = np.array([float(r["probability"]) for r in rows])
    np.testing.assert_allclose(probabilities, expected[contract.PROBABILITY_OUTPUT].numpy().ravel(), rtol=0, atol=1e-6)
    decisions = np.array([int(r["decision"]) for r in rows])
    assert (decisions == expected[contract.DECISION_OUTPUT].numpy().ravel()).all()
    labels = np.array([int(r[contract.LABEL]) for r in rows])
    counts = {
        "tp": int(((decisions == 1) & (labels == 1)).sum()),
        "fp": int(((decisions == 1) & (labels == 0)).sum()),
        "tn": int(((decisions == 0) & (labels == 0)).sum()),
        "fn": int(((decisions == 0) & (labels == 1)).sum()),
    }
    overall = time_run.summary["evaluation"]["overall"]
    assert counts == {k: int(overall[k]) for k in counts}
    threshold = float(rows[0]["threshold"])
    assert threshold == pytest.approx(time_run.summary["operating_threshold"]["threshold"], abs=1e-6)


@pytest.mark.e2e
def test_a_bad_row_stops_predict_or_goes_to_rejects(time_run, test_split, tmp_path):
    path, serialized = test_split
    lines = path.read_text().splitlines()
    cells = lines[9].split(",")
    cells[contract.RAW_COLUMNS.index("V3")] = "n/a"
    lines[9] = ",".join(cells)
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("\n".join(lines) + "\n")
    scores = tmp_path / "scores.csv.gz"
    stopped = _predict("--data", str(bad), "--output", str(time_run.output), "--to", str(scores))
    assert stopped.returncode == 3, stopped.stderr[-2000:]
    assert f"{bad}, line 10: column V3: 'n/a' is not a number" in stopped.stderr
    assert not scores.exists()
    rejects = tmp_path / "rejects.csv"
    kept = _predict(
        "--data", str(bad), "--output", str(time_run.output), "--to", str(scores), "--rejects", str(rejects)
    )
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert f"rejected 1 rows: {rejects}" in kept.stdout
    (reject,) = _rows(rejects)
    assert reject["line"] == "10" and "V3" in reject["reason"]
    with gzip.open(scores, "rt", newline="") as f:
        scored = list(csv.DictReader(f))
    assert len(scored) == len(serialized) - 1 and "10" not in {r["line"] for r in scored}


@pytest.mark.e2e
def test_a_scoring_batch_is_recorded_with_its_keys_and_its_skew(time_run, test_split, tmp_path):
    """The test split (a real, later window) scored with transaction ids: the ids come back with each score, in the
    output and in the batch's record, and the batch is within the skew thresholds."""
    import pyarrow.parquet as pq

    path, _ = test_split
    header, *rows = list(csv.reader(open(path, newline="")))
    keyed = tmp_path / "keyed.csv"
    with open(keyed, "w", newline="") as f:
        csv.writer(f).writerows([["txn_id", *header]] + [[f"T{i:05d}", *r] for i, r in enumerate(rows)])
    model = time_run.summary["pushed_model"]
    scores = tmp_path / "scores.csv"
    proc = _predict(
        "--data", str(keyed), "--model", model, "--output", str(tmp_path), "--to", str(scores), "--key", "txn_id"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = _rows(scores)
    assert [r["txn_id"] for r in out] == [f"T{i:05d}" for i in range(len(rows))]
    (record,) = (tmp_path / "scoring").iterdir()
    batch = json.loads((record / "batch.json").read_text())
    assert batch["key"] == "txn_id" and batch["rows"] == len(rows) and batch["model"]["path"] == model
    table = pq.read_table(record / "scores.parquet")
    assert table.column("key").to_pylist() == [r["txn_id"] for r in out]
    np.testing.assert_allclose(
        table.column("probability").to_numpy(), [float(r["probability"]) for r in out], atol=1e-6
    )
    assert batch["skew"]["measured"] and batch["skew"]["exceeded"] == []
    assert "serving skew: within thresholds" in proc.stdout


@pytest.mark.e2e
def test_a_shifted_batch_is_flagged_and_fail_on_skew_exits_after_writing_the_scores(time_run, test_split, tmp_path):
    path, serialized = test_split
    shifted = shifted_copy(path, tmp_path / "shifted.csv", ("V1", "V2", "V3", "V4"), sigmas=3.0, newest_share=1.0)
    scores = tmp_path / "scores.csv"
    model = time_run.summary["pushed_model"]
    args = ("--data", str(shifted), "--model", model, "--output", str(tmp_path), "--to", str(scores))
    proc = _predict(*args, "--fail-on-skew")
    assert proc.returncode == st.EXIT_SKEW, proc.stderr[-3000:]
    assert len(_rows(scores)) == len(serialized)  # the scores are written all the same
    assert "serving skew past its threshold" in proc.stderr
    for feature in ("V1", "V2", "V3", "V4"):
        assert f"{feature} Jensen-Shannon divergence" in proc.stdout
    # Without the flag, skew is an alert, not an outage.
    assert _predict(*args).returncode == 0


@pytest.mark.e2e
def test_predict_passes_over_a_newest_version_still_being_copied(time_run, test_split, tmp_path):
    """A newer version folder without saved_model.pb (a copy in progress) is named in a warning and passed over,
    as TF Serving passes it over: the scores are the newest complete version's."""
    path, serialized = test_split
    output = tmp_path / "out"
    shutil.copytree(time_run.output / "serving", output / "serving")
    complete = max(os.listdir(output / "serving"))
    copying = output / "serving" / str(int(complete) + 60)
    shutil.copytree(time_run.output / "serving" / complete / "variables", copying / "variables")

    proc = _predict("--data", str(path), "--output", str(output), "--to", str(tmp_path / "s.csv"), "--no-record")

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{copying} is not a complete model (yet); scoring with version {complete}" in proc.stderr
    assert {r["model_version"] for r in _rows(tmp_path / "s.csv")} == {complete}
    assert len(_rows(tmp_path / "s.csv")) == len(serialized)
