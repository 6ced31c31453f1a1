"""Reading results back without a pipeline: anomalies files, TFMA's gate outcomes, verdicts."""

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

import contract
from components.anomalies_gate.component import read_anomalies
from components.lib.rejection import DataRejectedError, count_problems, describe, describe_counts
from pipeline.definition import config as cfg
from pipeline.definition import status as st
from pipeline.definition.gates import GateConfig
from pipeline.results.evaluation import CHANGE_KIND, gate_results
from pipeline.results.metadata import NodeRun
from pipeline.results.verdict import compare_verdict, rejection, run_verdict


def _write_anomalies(uri, split, **features):
    folder = os.path.join(uri, contract.split_dir(split))
    os.makedirs(folder)
    anomalies = anomalies_pb2.Anomalies()
    for feature, (short, description) in features.items():
        info = anomalies.anomaly_info[feature]
        info.short_description, info.description = short, description
    with open(os.path.join(folder, contract.ANOMALIES_FILE), "wb") as f:
        f.write(anomalies.SerializeToString())


def test_read_anomalies_gives_one_entry_per_split_and_feature(tmp_path):
    uri = str(tmp_path)
    _write_anomalies(uri, "train", V3=("Column dropped", "The feature was present in fewer examples than expected."))
    _write_anomalies(uri, "eval", V3=("Column dropped", "The feature was present in fewer examples than expected."))
    _write_anomalies(uri, "test", Amount=("Out-of-range values", "Unexpectedly low values: -3.5<0"))
    found = read_anomalies(uri, ["train", "eval", "test"])
    assert [(a["feature"], a["split"]) for a in found] == [("Amount", "test"), ("V3", "eval"), ("V3", "train")]
    assert found[0]["short"] == "Out-of-range values" and "-3.5" in found[0]["description"]
    line = describe(found)
    assert "feature 'V3' (split eval, train): Column dropped" in line
    assert "feature 'Amount' (split test): Out-of-range values" in line


def test_read_anomalies_of_clean_splits_is_empty(tmp_path):
    _write_anomalies(str(tmp_path), "train")
    assert read_anomalies(str(tmp_path), ["train"]) == []


def _failure(metric, kind, slice_name="overall"):
    return {"slice": slice_name, "metric": metric, "kind": kind}


def test_gate_outcomes_are_tfmas_failures():
    gates = GateConfig()
    overall = {"pr_auc": 0.3, "recall_at_precision": 0.7}
    rows = gate_results(gates, overall, None, [_failure("pr_auc", "value")])
    outcome = {(r["metric"], r["kind"]): r["result"] for r in rows}
    assert outcome == {
        ("pr_auc", "value"): "fail",
        ("recall_at_precision", "value"): "pass",
        ("pr_auc", CHANGE_KIND): "not applied",
        ("recall_at_precision", CHANGE_KIND): "not applied",
    }
    # With a baseline, TFMA's change failures decide; a failure on a slice is not a gate's.
    baseline = {"pr_auc": 0.9, "recall_at_precision": 0.7}
    failures = [_failure("pr_auc", CHANGE_KIND), _failure("recall_at_precision", "value", "amount_bucket=0-10")]
    outcome = {(r["metric"], r["kind"]): r["result"] for r in gate_results(gates, overall, baseline, failures)}
    assert outcome[("pr_auc", CHANGE_KIND)] == "fail"
    assert outcome[("recall_at_precision", CHANGE_KIND)] == "pass"
    assert outcome[("recall_at_precision", "value")] == "pass"


def _nodes(**states):
    return {n: NodeRun(node_id=n, run_id="r", state=s, inputs={}, outputs={}) for n, s in states.items()}


_DONE = {n: "COMPLETE" for n in (cfg.EXAMPLE_GEN, cfg.GATE, cfg.TRANSFORM, cfg.TRAINER, cfg.EVALUATOR, cfg.PUSHER)}
_REASON = {"metric": "pr_auc", "value": 0.3, "threshold": 0.5, "difference": None, "baseline_value": None}
_V3 = [{"split": "train", "feature": "V3", "short": "Column dropped", "description": "d"}]
_MIN = {"train": 20, "eval": 5, "test": 5}
_COUNTS = {"train": {"rows": 640, "frauds": 30}, "eval": {"rows": 160, "frauds": 6}, "test": {"rows": 200, "frauds": 7}}


def _rejection(error=None, states=_DONE, anomalies=(), counts=_COUNTS):
    return rejection(error, _nodes(**states), "in.csv", list(anomalies), counts, _MIN)


def test_a_failed_gate_is_told_by_the_gates_own_rules():
    failed_gate = {cfg.EXAMPLE_GEN: "COMPLETE", cfg.GATE: "FAILED"}
    assert _rejection(states=failed_gate, anomalies=_V3) == "in.csv: feature 'V3' (split train): Column dropped: d"
    few = {**_COUNTS, "eval": {"rows": 160, "frauds": 2}}
    told = _rejection(states=failed_gate, counts=few)
    assert told.startswith("in.csv: the eval split holds 2 frauds, fewer than the 5 it needs (--min-eval-frauds)")
    empty = {s: {"rows": 0, "frauds": 0} for s in _COUNTS}
    assert "holds no rows" in _rejection(states=failed_gate, counts=empty)
    # A gate that passed, or one that failed for no data reason, is no data rejection.
    assert _rejection(anomalies=_V3) is None
    assert _rejection(error=RuntimeError("disk full"), states=failed_gate) is None


def test_a_rejection_where_the_data_is_read_comes_from_its_error():
    error = DataRejectedError("in.csv, line 6: 32 fields where the header has 31 [while running 'ReadRows']")
    wrapped = RuntimeError("pipeline failed")
    wrapped.__cause__ = error
    states = {cfg.EXAMPLE_GEN: "FAILED"}
    assert _rejection(error=wrapped, states=states) == "in.csv, line 6: 32 fields where the header has 31"


@pytest.mark.parametrize(
    ("error", "states", "rejected", "evaluated", "pushed", "expected"),
    [
        (None, _DONE, None, {"blessed": True}, "/s/1", (st.COMPLETED, st.EXIT_OK, "pushed to /s/1")),
        (
            None,
            _DONE,
            None,
            {"blessed": False, "not_blessed_reasons": [_REASON]},
            None,
            (st.NOT_BLESSED, st.EXIT_NOT_BLESSED, "pr_auc 0.3000 is below the floor 0.5000"),
        ),
        (
            RuntimeError("gate"),
            {cfg.EXAMPLE_GEN: "COMPLETE", cfg.GATE: "FAILED"},
            "in.csv: feature 'V3' (split train): Column dropped",
            None,
            None,
            (st.DATA_REJECTED, st.EXIT_DATA_REJECTED, "data rejected: in.csv: feature 'V3'"),
        ),
        (
            ValueError("no examples\nmore"),
            {**_DONE, cfg.TRAINER: "FAILED"},
            None,
            None,
            None,
            (st.FAILED, st.EXIT_FAILED, "run failed in Trainer: ValueError: no examples"),
        ),
        (None, _DONE, None, {"blessed": True}, None, (st.FAILED, st.EXIT_FAILED, "pushed nothing")),
    ],
    ids=["pushed", "not blessed", "rejected", "failed", "blessed but not pushed"],
)
def test_the_run_verdict(error, states, rejected, evaluated, pushed, expected):
    verdict = run_verdict(error, _nodes(**states), rejected, evaluated, pushed)
    status, code, words = expected
    assert (verdict.status, verdict.exit_code) == (status, code)
    assert words in verdict.message and "\n" not in verdict.message


def test_the_comparison_verdict_uses_the_same_rules():
    ids = [n for s in ("baseline", "oversample") for n in cfg.compare_node_ids(s)]
    results = {
        "baseline": {"would_be_blessed": True, "test": {"pr_auc": 0.7}},
        "oversample": {"would_be_blessed": False, "test": {"pr_auc": 0.8}},
    }
    verdict = compare_verdict(None, _nodes(**dict.fromkeys(ids, "COMPLETE")), None, results)
    assert verdict.exit_code == st.EXIT_OK
    assert verdict.message == "best test PR-AUC: oversample; would be blessed: baseline"
    failed = compare_verdict(None, _nodes(**{ids[0]: "COMPLETE"}), None, {"baseline": None, "oversample": None})
    assert failed.exit_code == st.EXIT_FAILED and "Trainer_oversample" in failed.message
    rejected = compare_verdict(RuntimeError("gate"), _nodes(), "in.csv: the input holds no rows", results)
    assert rejected.exit_code == st.EXIT_DATA_REJECTED


def test_the_count_rules():
    assert count_problems(_COUNTS, _MIN) == []
    no_fraud = {s: {"rows": c["rows"], "frauds": 0} for s, c in _COUNTS.items()}
    problems = count_problems(no_fraud, _MIN)
    assert [p.split(" split")[0] for p in problems] == ["the train", "the eval", "the test"]
    assert "holds 0 frauds, fewer than the 20 it needs (--min-train-frauds)" in problems[0]
    assert "lower the minimum" in describe_counts(problems)
    one_empty = {**_COUNTS, "test": {"rows": 0, "frauds": 0}}
    assert count_problems(one_empty, _MIN) == ["the test split holds no rows"]
    assert count_problems({s: {"rows": 0, "frauds": None} for s in _COUNTS}, _MIN) == [
        "the input holds no rows (a header alone?)"
    ]
