"""`outcomes` on scoring records written here: the join by key, what does not join named, the realized numbers
against a direct computation (scikit-learn for PR-AUC), and the exit code below the blessing floors."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import contract
from components.lib.csv_contract import FEATURES
from pipeline import cli
from pipeline.definition import status as st
from pipeline.scoring import outcomes as outcomes_lib
from pipeline.scoring import record as record_lib
from pipeline.scoring.rows import Batch

DAY = contract.SECONDS_PER_DAY


def _record(output, keys, times, probability, threshold, version="100", amount=None):
    n = len(keys)
    values = np.zeros((n, len(FEATURES)))
    values[:, FEATURES.index(contract.TIME)] = times
    values[:, FEATURES.index(contract.AMOUNT)] = amount if amount is not None else np.arange(n) + 1.0
    writer = record_lib.ScoresWriter(str(output), labelled=False, key="txn")
    batch = Batch(["day.csv"] * n, np.arange(2, n + 2), values, None, list(keys))
    decisions = (np.asarray(probability) >= threshold).astype(np.int8)
    writer.add(batch, np.asarray(probability, np.float32), decisions, version)
    model = {"version": version, "path": "/m", "threshold": threshold, "identity": "x"}
    return writer.close({"model": model, "inputs": ["day.csv"], "key": "txn", "labelled": False, "skew": None})


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    p = np.clip(rng.normal(0.2, 0.15, n) + 0.5 * y, 0, 1).astype(np.float32)
    times = np.where(np.arange(n) < n // 2, 1000.0, DAY + 1000.0)
    return [f"t{i}" for i in range(n)], y, p, times


def test_the_join_and_the_realized_numbers_equal_a_direct_computation(tmp_path):
    keys, y, p, times = _data()
    _record(tmp_path, keys, times, p, threshold=0.5)
    # Labels for every scored row but the last five, and three for transactions never scored.
    rows = [(k, int(v)) for k, v in zip(keys[:-5], y[:-5])] + [("ghost1", 0), ("ghost2", 1), ("ghost3", 0)]
    labels = outcomes_lib.write_labels(tmp_path / "labels.csv", rows, "txn")
    record = outcomes_lib.outcomes(str(tmp_path), str(labels), alerts_per_day=20)
    join = record["join"]
    assert (join["scored_rows"], join["labels"], join["matched_labels"]) == (400, 398, 395)
    assert join["unlabelled_scores"] == 5 and join["labels_never_scored"] == 3
    assert sorted(join["labels_never_scored_named"]) == ["ghost1", "ghost2", "ghost3"]
    known, pk, yk = slice(0, 395), p[:395], y[:395]
    flagged = pk >= np.float32(0.5)
    overall = record["overall"]
    assert overall["tp"] == int(np.sum(flagged & (yk == 1))) and overall["fp"] == int(np.sum(flagged & (yk == 0)))
    assert overall["precision"] == pytest.approx(overall["tp"] / flagged.sum())
    assert overall["recall"] == pytest.approx(overall["tp"] / yk.sum())
    assert overall["pr_auc"] == pytest.approx(average_precision_score(yk, pk))
    amount = (np.arange(400) + 1.0)[known]
    assert overall["fraud_amount_caught"] == pytest.approx(amount[flagged & (yk == 1)].sum())
    assert overall["fraud_amount_missed"] == pytest.approx(amount[~flagged & (yk == 1)].sum())
    # Per day: the two days apart, each with its own PR-AUC and the precision of its 20 highest scores.
    days = {g["day"]: g for g in record["groups"]}
    assert set(days) == {0, 1} and days[0]["rows"] == 200 and days[1]["labelled"] == 195
    first = slice(0, 200)
    assert days[0]["pr_auc"] == pytest.approx(average_precision_score(y[first], p[first]))
    top = np.argsort(-p[first], kind="stable")[:20]
    assert days[0]["precision_at_budget"] == pytest.approx(y[first][top].mean())


def test_keys_scored_twice_and_contradicting_labels_are_named(tmp_path):
    keys, y, p, times = _data(1, 50)
    _record(tmp_path, keys, times, p, 0.5, version="100")
    # The same transactions scored again by a newer model, and one label given twice with different values.
    _record(tmp_path, keys[:10], times[:10], p[:10], 0.4, version="101")
    rows = [(k, int(v)) for k, v in zip(keys, y)] + [(keys[3], 1 - int(y[3]))]
    labels = outcomes_lib.write_labels(tmp_path / "labels.csv", rows, "txn")
    record = outcomes_lib.outcomes(str(tmp_path), str(labels))
    join = record["join"]
    assert join["keys_scored_more_than_once"] == 10
    assert set(join["keys_scored_more_than_once_named"]) == set(keys[:10])
    assert join["conflicting_labels"] == [keys[3]] and keys[3] in join["duplicate_labels"]
    # Each model's scores count for that model.
    assert {g["model_version"] for g in record["groups"]} == {"100", "101"}


def test_the_command_exits_below_the_floors_and_writes_its_page(tmp_path, capsys):
    keys, y, _, times = _data(2)
    noise = np.random.default_rng(9).random(len(keys)).astype(np.float32)  # a model that learnt nothing
    _record(tmp_path, keys, times, noise, 0.5)
    labels = outcomes_lib.write_labels(tmp_path / "labels.csv", list(zip(keys, y.tolist())), "txn")
    code = cli.main(["outcomes", "--labels", str(labels), "--output", str(tmp_path)])
    assert code == st.EXIT_BELOW_FLOOR
    assert "below the blessing floors: PR-AUC" in capsys.readouterr().err
    written = json.loads((tmp_path / "outcomes" / "outcomes.json").read_text())
    assert written["overall"]["pr_auc"] < 0.5
    assert (tmp_path / "outcomes" / "outcomes.html").stat().st_size > 1000
    # With the floors at 0 the same outcomes pass.
    assert cli.main(["outcomes", "--labels", str(labels), "--output", str(tmp_path), "--min-pr-auc", "0",
                     "--min-recall-at-precision", "0"]) == st.EXIT_OK  # fmt: skip


def test_nothing_recorded_is_a_usage_error(tmp_path, capsys):
    labels = outcomes_lib.write_labels(tmp_path / "labels.csv", [("a", 1)], "txn")
    assert cli.main(["outcomes", "--labels", str(labels), "--output", str(tmp_path)]) == st.EXIT_USAGE
    assert "no scoring recorded yet" in capsys.readouterr().err


def test_versions_of_both_kinds_numbered_and_a_model_folder_sort_and_are_reported(tmp_path):
    # A batch scored by a pushed version (100) and one by `predict --model my-model`: the sort of their names
    # compared an int with a str and stopped outcomes with a TypeError.
    keys, y, p, times = _data(2, 100)
    _record(tmp_path, keys[:50], times[:50], p[:50], 0.5, version="100")
    _record(tmp_path, keys[50:], times[50:], p[50:], 0.5, version="my-model")
    labels = outcomes_lib.write_labels(tmp_path / "labels.csv", list(zip(keys, map(int, y))), "txn")
    record = outcomes_lib.outcomes(str(tmp_path), str(labels), alerts_per_day=None)
    assert [g["model_version"] for g in record["groups"]][:1] == ["100"]
    assert {g["model_version"] for g in record["groups"]} == {"100", "my-model"}


def test_a_day_is_a_date_when_the_datasets_times_are_dates():
    """`outcomes` prints and pages a day of an ISO-timed dataset as its date, not as days since 1970."""
    import dataclasses

    iso = dataclasses.replace(contract.DEFAULT_DATASET, time_format="iso8601")
    assert outcomes_lib.day_date(20541, iso) == "2026-03-29"
    assert outcomes_lib.day_date(0, iso) == "1970-01-01"
    assert outcomes_lib.day_date(1, contract.DEFAULT_DATASET) is None  # the ULB file's Time counts from its start


def test_batch_ids_sort_in_the_order_they_were_made_within_one_second():
    # `batches` lists records oldest first by name, and `outcomes` reads the newest one's model: the model server
    # opens several windows in one second around a version swap.
    made = [record_lib.new_batch_id() for _ in range(50)]
    assert sorted(made) == made
