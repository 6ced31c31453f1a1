"""Spans, drift and skew end to end: the shifted sample is stopped and can be accepted; a replay retrains per span."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import contract
from pipeline.definition import config as cfg
from tests.support import DOWNSTREAM_OF_GATE, FIXTURE, NUMBER, read_csv_rows, report_path, verdict_exit

SHIFTED = ("V1", "V2", "V3", "V4")


def _skew(summary: dict) -> dict:
    (comparison,) = [c for c in summary["drift"]["comparisons"] if tuple(c["pair"]) == contract.SKEW_PAIR]
    return {f["feature"]: f for f in comparison["features"]}


@pytest.mark.e2e
def test_a_shift_in_the_newest_rows_stops_the_run_before_transform_naming_each_feature(drifted):
    run = drifted["stopped"]
    assert run.returncode == 3, run.stderr[-2000:]
    message = run.summary["message"]
    assert run.summary["status"] == "data_rejected" and "--accept-drift" in message
    skew = _skew(run.summary)
    for feature in SHIFTED:
        measured = skew[feature]
        assert measured["exceeded"] and measured["value"] > measured["threshold"]
        # Each feature is named with its divergence and threshold, on the terminal and in the summary.
        told = f"{feature} Jensen-Shannon divergence {measured['value']:.3f} > {measured['threshold']:g}"
        assert told in message and told in run.stderr
    assert {f for f, m in skew.items() if m["exceeded"]} == set(SHIFTED)
    assert run.summary["drift"]["accepted"] is False
    # This run's components (the folder's store also holds the accepted run that follows).
    states = {node: c["state"] for node, c in run.summary["components"].items()}
    assert states[cfg.GATE] == "FAILED"
    assert not DOWNSTREAM_OF_GATE & set(states), states
    assert run.serving == {}


@pytest.mark.e2e
def test_accept_drift_lets_the_run_through_and_the_summary_says_so(drifted):
    run = drifted["accepted"]
    assert run.returncode == verdict_exit(run), run.stderr[-2000:]
    assert run.summary["drift"]["accepted"] is True and run.summary["drift"]["accept_drift"] is True
    assert {f for f, m in _skew(run.summary).items() if m["exceeded"]} == set(SHIFTED)
    assert "accepted with --accept-drift" in run.stdout
    states = {node: c["state"] for node, c in run.summary["components"].items()}
    assert states[cfg.GATE] == states[cfg.TRANSFORM] == states[cfg.EVALUATOR] == "COMPLETE"
    # Only the gate's parameter changed: what it reads comes from the stopped run's cache.
    assert states[cfg.DISTRIBUTION_VALIDATOR] == states[cfg.EXAMPLE_GEN] == "CACHED"


@pytest.mark.e2e
def test_the_unshifted_data_passes_the_same_gate(time_run):
    drift = time_run.summary["drift"]
    assert drift["exceeded"] == [] and drift["accepted"] is False
    skew = _skew(time_run.summary)
    assert set(skew) == {*contract.MODEL_FEATURES, contract.LABEL}
    assert all(0 <= m["value"] <= m["threshold"] for m in skew.values())
    assert time_run.summary["input"]["spans"] is None


def _span_rows(output: Path, label: str) -> list[list[str]]:
    path = output / "spans" / f"span-{label}" / "part-0.csv.gz"
    with gzip.open(path, "rt") as f:
        return [line.split(",") for line in f.read().splitlines()[1:]]


@pytest.mark.e2e
def test_replay_runs_once_per_span_with_real_spans_passing_the_drift_gate(replayed):
    runs = replayed["record"]["runs"]
    assert [r["span"] for r in runs] == ["0001", "0002", "0003"]
    assert sum(r["span_rows"] for r in runs) == len(read_csv_rows(FIXTURE)) - 1
    assert [r["drift"] for r in runs] == ["within thresholds"] * 3
    assert all(r["exit_code"] in (0, 4) for r in runs), runs
    # The printed table has a row per span.
    lines = replayed["proc"].stdout.splitlines()
    assert any(line.split()[:1] == ["0003"] for line in lines)
    assert "serving versions:" in replayed["proc"].stdout


@pytest.mark.e2e
def test_the_window_takes_exactly_the_newest_spans(replayed):
    runs = {r["span"]: r for r in replayed["record"]["runs"]}
    assert runs["0001"]["window"] == ["0001"]
    assert runs["0002"]["window"] == ["0001", "0002"]
    assert runs["0003"]["window"] == ["0002", "0003"]
    output = replayed["output"]
    # The last run's splits hold the rows of spans 2 and 3, and nothing else.
    assert runs["0003"]["window_rows"] == len(_span_rows(output, "0002")) + len(_span_rows(output, "0003"))
    summary = json.loads((output / "summary.json").read_text())
    assert summary["input"]["spans"]["previous"] == "0002"
    assert summary["input"]["spans"]["newest_counts"]["rows"] == len(_span_rows(output, "0003"))
    assert summary["input"]["spans"]["previous_counts"]["rows"] == len(_span_rows(output, "0002"))
    pairs = [tuple(c["pair"]) for c in summary["drift"]["comparisons"]]
    assert pairs == [contract.SKEW_PAIR, contract.DRIFT_PAIR]


@pytest.mark.e2e
def test_replay_compares_each_model_with_the_latest_blessed_and_serving_stays_consistent(replayed):
    runs = replayed["record"]["runs"]
    pushed = [r for r in runs if r["pushed_version"]]
    assert len(pushed) >= 2, runs
    # Every run after the first blessed one was compared with a blessed model; the first had none.
    first_blessed = runs.index(pushed[0])
    assert runs[first_blessed]["baseline"] is None
    assert all(r["baseline"] for r in runs[first_blessed + 1 :])
    # The serving folder holds exactly the pushed models, in push order, each a complete SavedModel.
    serving = replayed["output"] / "serving"
    assert replayed["record"]["serving"] == [r["pushed_version"] for r in pushed]
    assert sorted(p.name for p in serving.iterdir()) == sorted(replayed["record"]["serving"])
    for version in replayed["record"]["serving"]:
        assert (serving / version / "saved_model.pb").is_file()
        assert (serving / version / contract.OPERATING_THRESHOLD).is_file()


@pytest.mark.e2e
def test_replay_scores_each_span_with_the_model_serving_before_retraining_and_joins_its_labels(replayed):
    """The served model's realized numbers on each span equal a direct computation from its scores and the span's
    labels (scikit-learn for PR-AUC); the first span has no model to score it."""
    from sklearn.metrics import average_precision_score

    runs = replayed["record"]["runs"]
    assert runs[0]["served"] is None
    for index, run in enumerate(runs[1:], start=1):
        served = run["served"]
        serving_then = [r["pushed_version"] for r in runs[:index] if r["pushed_version"]][-1]
        assert served["model_version"] == serving_then, served
        scores = replayed["output"] / "scores" / f"span-{run['span']}.csv.gz"
        rows = read_csv_rows(scores)
        header, rows = rows[0], rows[1:]
        y = np.array([int(r[header.index(contract.LABEL)]) for r in rows])
        p = np.array([float(r[header.index("probability")]) for r in rows])
        d = np.array([int(r[header.index("decision")]) for r in rows])
        assert len(rows) == run["span_rows"] and y.sum() == run["span_frauds"]
        tp = int(np.sum((d == 1) & (y == 1)))
        assert served["alerts"] == int(d.sum())
        assert served["precision"] == pytest.approx(tp / d.sum()) if d.sum() else served["precision"] is None
        assert served["recall"] == pytest.approx(tp / y.sum())
        assert served["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-6)
        # Its serving skew was measured against the model's training data, and a real later span is within it.
        assert served["skew_largest"] is not None and served["skew_exceeded"] == []
    assert "served" in replayed["proc"].stdout and "real AUC" in replayed["proc"].stdout


@pytest.mark.e2e
def test_the_report_shows_every_divergence_against_its_threshold(drifted):
    run = drifted["accepted"]
    page = report_path(run).read_text()
    assert "past thresholds, accepted (--accept-drift)" in page
    assert "fig-drift" in page
    shown = dict(NUMBER.findall(page))
    (comparison,) = run.summary["drift"]["comparisons"]
    for j, measured in enumerate(comparison["features"]):
        key = f"drift/comparisons/0/features/{j}"
        assert float(shown[f"{key}/value"]) == measured["value"]
        assert float(shown[f"{key}/threshold"]) == measured["threshold"]


@pytest.mark.e2e
def test_a_day_without_a_new_span_is_a_cached_run_that_pushes_nothing(replayed):
    again = replayed["again"]
    assert again.returncode == 0, again.stderr[-2000:]
    states = {node: c["state"] for node, c in again.summary["components"].items()}
    assert set(states.values()) == {"CACHED"}, states
    assert again.serving == replayed["serving_before"]
    assert again.summary["input"]["spans"]["window"] == ["0002", "0003"]
