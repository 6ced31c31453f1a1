"""The engine harness's own logic (tests/beam_cluster): why an engine test skips, and how Spark's event log is read
into the jobs the end-to-end tests match to components."""

import json

from tests.beam_cluster import engines
from tests.beam_cluster.spark import SparkCluster


def test_an_engine_without_java_is_unavailable_saying_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "ENGINES", tmp_path / "engines")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    why = engines.unavailable("flink")
    assert "java" in why and "go" in why and "make engines" in why
    assert not (tmp_path / "engines").exists()  # nothing fetched


def _write_log(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_spark_jobs_are_read_from_the_event_logs(tmp_path):
    cluster = SparkCluster(tmp_path / "cluster")
    cluster.events.mkdir(parents=True)
    stage = {
        "Event": "SparkListenerStageSubmitted",
        "Stage Info": {"Stage Name": "collect at X", "RDD Info": [{"Name": "GenerateStatistics[train]/Run"}]},
    }
    executor = {"Event": "SparkListenerExecutorAdded", "Executor Info": {"Total Cores": 1}}
    task = {"Event": "SparkListenerTaskEnd", "Task Info": {"Executor ID": "0"}}
    _write_log(
        cluster.events / "app-2",
        [
            {"Event": "SparkListenerApplicationStart", "Timestamp": 2},
            executor,
            executor,
            stage,
            task,
            {**task, "Task Info": {"Executor ID": "1"}},
            {"Event": "SparkListenerJobEnd", "Job Result": {"Result": "JobSucceeded"}},
            {"Event": "SparkListenerApplicationEnd"},
        ],
    )
    _write_log(  # older, and one of its Spark jobs failed
        cluster.events / "app-1",
        [
            {"Event": "SparkListenerApplicationStart", "Timestamp": 1},
            {"Event": "SparkListenerJobEnd", "Job Result": {"Result": "JobFailed"}},
            {"Event": "SparkListenerApplicationEnd"},
        ],
    )
    (cluster.events / "app-3.inprogress").write_text("")
    failed, finished, running = cluster.jobs()
    assert failed["name"] == "app-1" and failed["state"] == "FAILED"
    assert finished["state"] == "FINISHED" and finished["parallelism"] == 2 and finished["workers"] == {"0", "1"}
    assert "GenerateStatistics[train]/Run" in finished["operators"]
    assert running["state"] == "RUNNING"
