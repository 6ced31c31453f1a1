"""The Evaluator as the blessing gate and the Pusher as its consequence, over a sequence of runs in one folder."""

import os

import pytest
import tensorflow_model_analysis as tfma

import contract
from components.lib.tfma_results import CHANGE_KIND
from pipeline.definition import status
from tests.support import ALL_COMPONENTS, evaluator_executions, metric_names, raw_examples, rerun_with_tfma

pytestmark = pytest.mark.e2e


def _states(run):
    return {node: c["state"] for node, c in run.summary["components"].items()}


def test_first_run_is_blessed_and_pushed_into_a_versioned_folder(lifecycle):
    first = lifecycle["first"]
    assert first.returncode == status.EXIT_OK, first.stderr[-3000:]
    summary = first.summary
    assert summary["blessed"] is True and summary["not_blessed_reasons"] == []
    assert summary["evaluation"]["baseline"] is None
    assert "no other model serving" in summary["baseline"]
    pushed = summary["pushed_model"]
    assert os.path.dirname(pushed) == str(first.output / "serving")
    assert os.path.basename(pushed).isdigit()
    assert os.path.isfile(os.path.join(pushed, "saved_model.pb"))
    assert set(_states(first).values()) == {"COMPLETE"}
    assert f"blessed: yes; pushed to {pushed}" in first.stdout


def test_unchanged_rerun_comes_from_the_cache(lifecycle):
    first, unchanged = lifecycle["first"], lifecycle["unchanged"]
    assert unchanged.returncode == status.EXIT_OK, unchanged.stderr[-3000:]
    states = _states(unchanged)
    # ServingBaseline too: its cache key holds the baseline the serving folder gives this model, which is the
    # same nothing as on the first run (the version serving now is this very model).
    assert states == dict.fromkeys(ALL_COMPONENTS, "CACHED")
    assert unchanged.summary["pushed_model"] == first.summary["pushed_model"]
    assert unchanged.serving == first.serving


@pytest.mark.parametrize("step", ["impossible", "worse"])
def test_a_model_that_fails_a_gate_is_not_pushed(step, lifecycle):
    names = list(lifecycle)
    before = lifecycle[names[names.index(step) - 1]]
    run = lifecycle[step]
    assert run.returncode == status.EXIT_NOT_BLESSED, run.stderr[-3000:]
    summary = run.summary
    assert summary["status"] == status.NOT_BLESSED
    assert summary["blessed"] is False and summary["pushed_model"] is None
    assert run.serving == before.serving  # the serving folder is exactly as it was
    reasons = summary["not_blessed_reasons"]
    assert reasons and all(r["slice"] == "overall" for r in reasons)
    # The gate table is TFMA's verdict: the failed rows are exactly TFMA's failures.
    evaluation = summary["evaluation"]
    assert evaluation["validation_ok"] is False
    failed = {(g["metric"], g["kind"]) for g in evaluation["gate_results"] if g["result"] == "fail"}
    assert failed == {(r["metric"], r["kind"]) for r in reasons}
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(message) == 1 and "not blessed" in message[0]
    if step == "impossible":
        failed = {r["metric"]: r for r in reasons if r["kind"] == "value"}
        assert "pr_auc" in failed and failed["pr_auc"]["threshold"] == 1.0
        assert failed["pr_auc"]["value"] < 1.0
        assert "pr_auc" in message[0] and "floor" in message[0]
    else:
        assert summary["trainer"]["epochs_run"] == 1
        assert summary["evaluation"]["baseline"] is not None
        assert {r["kind"] for r in reasons} == {CHANGE_KIND}
        for reason in reasons:
            assert reason["value"] < reason["baseline_value"] + reason["threshold"]
        assert "below the serving model's" in message[0] and "allowed drop" in message[0]


def test_slices_are_in_the_evaluation_result(time_run):
    evaluation = time_run.summary["evaluation"]
    result = tfma.load_eval_result(evaluation["evaluation_uri"])
    slice_features = {column for key, _ in result.slicing_metrics for column, _ in key}
    assert slice_features == set(contract.SLICE_FEATURES)
    test_rows = time_run.summary["splits"]["test"]["rows"]
    assert evaluation["overall"]["example_count"] == test_rows
    for feature in contract.SLICE_FEATURES:
        slices = {k: v for k, v in evaluation["slices"].items() if k.startswith(feature + "=")}
        assert slices, feature
        assert sum(v["example_count"] for v in slices.values()) == test_rows
        for values in slices.values():
            assert {"tp", "fp", "tn", "fn", "precision", "recall", "roc_auc", "pr_auc"} <= set(values)
    overall = evaluation["overall"]
    assert overall["tp"] + overall["fp"] + overall["tn"] + overall["fn"] == test_rows
    assert overall["tp"] + overall["fn"] == time_run.summary["splits"]["test"]["frauds"]


@pytest.mark.e2e
def test_an_alert_budget_flags_on_eval_the_alerts_it_promised(lifecycle):
    """`--alerts-per-day 40`: the threshold's eval alerts are the model's own decisions on the eval split, and
    within 40 for each day the eval split spans (counted from its Time values)."""
    import tensorflow as tf

    run = lifecycle["worse"]
    op = run.summary["operating_threshold"]
    alerts = op["alerts"]
    assert op["policy"] == {**op["policy"], "kind": "alerts", "alerts_per_day": 40.0}
    times = [
        tf.train.Example.FromString(r).features.feature["Time"].float_list.value[0] for r in raw_examples(run, "eval")
    ]
    days = (max(times) - min(times)) / 86400
    assert alerts["eval_days"] == pytest.approx(days, rel=1e-5)
    assert alerts["eval_budget"] == int(40 * days) and alerts["eval_alerts"] <= alerts["eval_budget"]
    assert alerts["eval_alerts_per_day"] == pytest.approx(alerts["eval_alerts"] / days, rel=1e-5)
    model = tf.saved_model.load(os.path.join(run.summary["artifacts"]["model"], contract.SERVING_MODEL_DIR))
    unlabelled = []
    for record in raw_examples(run, "eval"):
        example = tf.train.Example.FromString(record)
        del example.features.feature[contract.LABEL]
        unlabelled.append(example.SerializeToString())
    decisions = model.signatures[contract.SERVING_SIGNATURE](examples=tf.constant(unlabelled))[contract.DECISION_OUTPUT]
    assert int(decisions.numpy().sum()) == alerts["eval_alerts"]
    assert "alert budget 40 a day" in run.stdout


def test_every_evaluation_of_the_folder_is_tfmas_own_pipelines_to_the_last_digit(lifecycle, tmp_path):
    """The runs' Evaluator computed in process (components/evaluator/in_process.py); TFMA's Beam pipeline, run again
    on the same recorded inputs, writes the same metrics on every slice, validation result, eval config and blessing:
    a first run, another strategy against the first model as baseline, impossible gates (not blessed), and a model
    that the change gates refuse."""
    last = lifecycle["worse"]  # every run of the folder is in its store
    executions = evaluator_executions(last)
    assert len(executions) == 4, executions  # the unchanged re-run's was cached
    log = (last.output / "pipeline.log").read_text()
    assert log.count("slices evaluated in process") == len(executions)
    assert "Evaluator: TFX's Beam executor runs" not in log
    blessings, names = [], []
    for which in executions:
        ours, theirs = rerun_with_tfma(last, which, tmp_path / str(which))
        assert ours["metrics"].keys() == theirs["metrics"].keys(), which
        for slice_key, metrics in ours["metrics"].items():
            assert metrics == theirs["metrics"][slice_key], (which, slice_key)
        assert ours == theirs, which
        blessings.append(ours["blessing"])
        names.append(metric_names(ours))
    assert blessings == [["BLESSED"], ["BLESSED"], ["NOT_BLESSED"], ["NOT_BLESSED"]]
    # The later runs had the first model as their baseline: the diffs against it were compared too.
    assert "diff:pr_auc" not in names[0] and all("diff:pr_auc" in n and "tp" in n for n in names[1:])
