"""Compiled specs that really run: the Kubeflow and Vertex specs rehearsed task by task, compared with `run`.

Each rehearsal runs every task's compiled container command in its own process with the ExecutorInput the target's
backend would build (pipeline/runners/rehearsal.py). The first Kubeflow rehearsal and the Vertex one must give what
`fraud-pipeline run` gives on the same data and flags (the session's time_run): split counts, statistics, the rows
the Trainer reads through Transform's graph, threshold, every test metric, the blessing and the pushed model's
scores.
"""

import gzip
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

import contract
from pipeline.definition import status as st
from tests.support import CLI, FIXTURE, raw_examples, trainer_rows

pytestmark = pytest.mark.e2e


def _statistics(summary: dict, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    path = os.path.join(summary["artifacts"]["statistics"], contract.split_dir(split), contract.STATISTICS_FILE)
    with open(path, "rb") as f:
        stats.ParseFromString(f.read())
    return stats


def _assert_same_rows(got: tuple, want: tuple, split: str) -> None:
    """The same rows the Trainer reads; floats to 1e-5. Transform's analyzers sum in the order of Beam's bundles,
    which varies with the machine's load, so a z-score's last float32 bits can move (Amount_xf by 1e-7, measured
    with the suite on two workers) while the model, its threshold and its metrics come out the same."""
    (x, y), (want_x, want_y) = got, want
    assert x.shape == want_x.shape and x.shape[0] > 0, split
    np.testing.assert_allclose(x, want_x, rtol=1e-5, atol=1e-6, err_msg=split)
    np.testing.assert_array_equal(y, want_y, err_msg=split)


def _scores(model_dir: str, examples: list[bytes]) -> np.ndarray:
    model = tf.saved_model.load(model_dir)
    outputs = model.signatures[contract.SERVING_SIGNATURE](**{contract.SERVING_INPUT: tf.constant(examples)})
    return outputs[contract.PROBABILITY_OUTPUT].numpy().ravel()


def _unlabelled(run) -> list[bytes]:
    out = []
    for record in raw_examples(run, "test"):
        example = tf.train.Example.FromString(record)
        del example.features.feature[contract.LABEL]
        out.append(example.SerializeToString())
    return out


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_a_rehearsed_spec_gives_what_run_gives(target, rehearsed, time_run):
    rehearsal = rehearsed["kubeflow"]["first"] if target == "kubeflow" else rehearsed["vertex"]
    assert rehearsal["returncode"] == st.EXIT_OK, rehearsal["stderr"][-3000:]
    got, want = rehearsal["summary"], time_run.summary
    assert got["rehearsal"]["target"] == target
    assert {t["state"] for t in got["rehearsal"]["tasks"].values()} == {"COMPLETE"}
    assert got["splits"] == want["splits"]
    for split in contract.SPLITS:
        assert _statistics(got, split) == _statistics(want, split), split
    for split in contract.TRAINING_SPLITS:
        _assert_same_rows(trainer_rows(got, split), trainer_rows(want, split), split)
    assert got["operating_threshold"]["threshold"] == pytest.approx(want["operating_threshold"]["threshold"], abs=1e-6)
    assert set(got["evaluation"]["overall"]) == set(want["evaluation"]["overall"])
    for metric, value in want["evaluation"]["overall"].items():
        assert got["evaluation"]["overall"][metric] == pytest.approx(value, abs=1e-6), metric
    assert got["evaluation"]["slices"].keys() == want["evaluation"]["slices"].keys()
    assert got["blessed"] is want["blessed"] is True
    examples = _unlabelled(time_run)
    np.testing.assert_allclose(
        _scores(got["pushed_model"], examples), _scores(want["pushed_model"], examples), atol=1e-6
    )
    # The pushed version is under the mapped object store, complete and with its lineage.
    assert got["pushed_model"].startswith(str(rehearsal["root"] / "gcs" / "demo-bucket" / "fraud" / "root" / "serving"))
    assert os.path.isfile(os.path.join(got["pushed_model"], contract.LINEAGE))


def test_vertexs_dataflow_arguments_are_dropped_and_said(rehearsed):
    vertex = rehearsed["vertex"]
    mapped = vertex["summary"]["rehearsal"]["mapped"]
    assert any("--runner=DataflowRunner: dropped" in line for line in mapped), mapped
    assert any(line.startswith("gs:// ->") for line in mapped), mapped
    assert "mapped: Beam argument --runner=DataflowRunner" in vertex["stderr"]


def test_the_same_data_again_pushes_nothing_and_compares_with_nothing_else(rehearsed):
    first, again = rehearsed["kubeflow"]["first"], rehearsed["kubeflow"]["again"]
    assert again["returncode"] == st.EXIT_OK, again["stderr"][-3000:]
    # Every task ran again (CsvExampleGen is not cached on the cluster), retrained the same model, and the Pusher
    # saw it serving already: the serving folder is untouched, file for file.
    assert {t["state"] for t in again["summary"]["rehearsal"]["tasks"].values()} == {"COMPLETE"}
    assert again["serving"] == first["serving"]
    assert again["summary"]["already_serving"] is True
    assert again["summary"]["pushed_model"] == first["summary"]["pushed_model"].replace(
        str(first["root"]), str(again["root"])
    )
    # The model serving is this model: no baseline, so it was not compared with itself.
    assert again["summary"]["evaluation"]["baseline"] is None
    assert "nothing pushed again" in again["stdout"]


def test_changed_data_is_compared_with_the_first_runs_model(rehearsed):
    first, changed = rehearsed["kubeflow"]["first"], rehearsed["kubeflow"]["changed"]
    assert changed["returncode"] in (st.EXIT_OK, st.EXIT_NOT_BLESSED), changed["stderr"][-3000:]
    baseline = changed["summary"]["evaluation"]["baseline"]
    # The first run's version, as it is in this run's copy of the object store.
    pushed = first["summary"]["pushed_model"].replace(str(first["root"]), str(changed["root"]))
    assert baseline["serving_path"] == pushed
    assert changed["summary"]["splits"]["train"]["rows"] < first["summary"]["splits"]["train"]["rows"]
    change_gates = [g for g in changed["summary"]["evaluation"]["gate_results"] if g["kind"] != "value"]
    assert change_gates and all(g["result"] in ("pass", "fail") for g in change_gates)
    if changed["returncode"] == st.EXIT_OK:
        assert len(changed["serving"]) > len(first["serving"])


def test_a_task_that_fails_stops_the_rehearsal_and_is_named(rehearsed, tmp_path):
    """Bad data stops the rehearsal as it stops `run`: exit 3, the file named, no task after the failed one."""
    empty = tmp_path / FIXTURE.name
    empty.write_bytes(gzip.compress(b""))
    proc = subprocess.run(
        [str(CLI), "rehearse", str(rehearsed["specs"]["kubeflow"]), "--root", str(tmp_path / "root")]
        + ["--data", str(empty), "--no-report"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == st.EXIT_DATA_REJECTED, proc.stderr[-3000:]
    assert "data rejected" in proc.stderr and empty.name in proc.stderr
    assert "task CsvExampleGen failed" in proc.stderr and "CsvExampleGen.log" in proc.stderr
    tasks = json.loads((tmp_path / "root" / "summary.json").read_text())["rehearsal"]["tasks"]
    assert tasks["CsvExampleGen"]["state"] == "FAILED"
    assert {tasks[t]["state"] for t in tasks if t not in ("CsvExampleGen", "ImportSchemaGen")} == {"NOT_RUN"}
