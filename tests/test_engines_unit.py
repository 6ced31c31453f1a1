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


def test_a_worker_environment_from_a_venv_that_is_a_link_leaves_the_venv_whole(tmp_path):
    """`.venv` as a symbolic link to a venv elsewhere: the copy is made from what it points to, and removing the
    project from the copy removes nothing from the real venv (the console command stays the user's)."""
    from tests.beam_cluster import worker_environment

    real = tmp_path / "elsewhere" / "venv"
    site = real / "lib" / "python3.10" / "site-packages"
    (site / "fraud_pipeline-0.1.dist-info").mkdir(parents=True)
    (site / "__editable__.fraud_pipeline-0.1.pth").write_text("/src\n")
    (site / "numpy.py").write_text("")
    (real / "bin").mkdir()
    (real / "bin" / "python").write_text("")
    (real / "bin" / "fraud-pipeline").write_text("")
    link = tmp_path / ".venv"
    link.symlink_to(real)
    python = worker_environment(tmp_path / "worker-env", link)
    copy = tmp_path / "worker-env"
    assert python == copy / "bin" / "python" and copy.is_dir() and not copy.is_symlink()
    assert sorted(p.name for p in (copy / "lib" / "python3.10" / "site-packages").iterdir()) == ["numpy.py"]
    assert not (copy / "bin" / "fraud-pipeline").exists()
    # The real venv is whole.
    assert (real / "bin" / "fraud-pipeline").is_file() and (site / "fraud_pipeline-0.1.dist-info").is_dir()
    assert (site / "__editable__.fraud_pipeline-0.1.pth").is_file()


def test_the_worker_pools_requests_are_beams_messages():
    """tests/beam_cluster/pool.py encodes the client's requests itself (it imports only gRPC): the bytes must be
    Beam's StartWorkerRequest and StopWorkerRequest, and it must read the endpoints out of a real
    GetProvisionInfoResponse."""
    from apache_beam.portability.api import beam_fn_api_pb2, beam_provision_api_pb2, endpoints_pb2

    from tests.beam_cluster import pool

    def endpoint(url):
        return endpoints_pb2.ApiServiceDescriptor(url=url)

    started = beam_fn_api_pb2.StartWorkerRequest.FromString(
        pool.start_request("1-12", "localhost:1", "localhost:2", "localhost:3", "localhost:4")
    )
    assert started == beam_fn_api_pb2.StartWorkerRequest(
        worker_id="1-12",
        control_endpoint=endpoint("localhost:1"),
        logging_endpoint=endpoint("localhost:2"),
        artifact_endpoint=endpoint("localhost:3"),
        provision_endpoint=endpoint("localhost:4"),
    )
    assert beam_fn_api_pb2.StopWorkerRequest.FromString(pool.stop_request("1-12")).worker_id == "1-12"
    assert pool.response_error(beam_fn_api_pb2.StartWorkerResponse().SerializeToString()) == ""
    refused = beam_fn_api_pb2.StartWorkerResponse(error="Traceback: no such worker é").SerializeToString()
    assert pool.response_error(refused) == "Traceback: no such worker é"
    info = beam_provision_api_pb2.ProvisionInfo(
        logging_endpoint=endpoint("localhost:7"),
        artifact_endpoint=endpoint("localhost:8"),
        control_endpoint=endpoint("localhost:9"),
        retrieval_token="token",
        sibling_worker_ids=["1-2", "1-3"],
    )
    info.pipeline_options.update({"runner": "PortableRunner", "parallelism": 2})
    response = beam_provision_api_pb2.GetProvisionInfoResponse(info=info).SerializeToString()
    assert pool.endpoints(response) == {"logging": "localhost:7", "artifact": "localhost:8", "control": "localhost:9"}
