"""Session-scoped pipeline runs shared by the tests (a TFX run costs a minute, so tests share them), and the rule
that keeps the fast tier fast: a test that uses one of them must be marked e2e."""

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

# TFX 1.16 and TF Transform use Keras 2 (tf_keras); set before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests import waits  # noqa: E402
from tests.support import (  # noqa: E402 - after the environment is set.
    CLI,
    ENGINE_RUN_TIMEOUT,
    FIXTURE,
    PROBE_TIMEOUT,
    REHEARSAL_TIMEOUT,
    ROOT,
    SAMPLE,
    CliRun,
    compile_spec,
    group_of,
    read_csv_rows,
    run_cli,
    shared_run,
    shifted_copy,
    snapshot,
    xdist_groups,
)


def pytest_configure(config):
    """Every subprocess wait with a timeout is recorded (tests/waits.py): the session's controller names a fresh file
    for it, which the xdist workers it starts inherit."""
    if not hasattr(config, "workerinput"):
        handle, path = tempfile.mkstemp(prefix="fraud-pipeline-waits-", suffix=".jsonl")
        os.close(handle)
        os.environ[waits.WAITS] = config._waits_file = path
    waits.install()


def pytest_terminal_summary(terminalreporter, config):
    """The waits that came closest to their timeout (docs/testing.md, "Timeouts"); FRAUD_PIPELINE_TEST_WAITS_REPORT
    names a file for all of them as JSON."""
    path = getattr(config, "_waits_file", None)
    if not path:
        return
    places = waits.summary(path)
    report = os.environ.get("FRAUD_PIPELINE_TEST_WAITS_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(places, f, indent=1)
    if places:
        terminalreporter.section("waits against their timeouts")
        for line in waits.lines(places):
            terminalreporter.write_line(line)
    os.unlink(path)


# The shift the drift gate must stop: V1..V4 moved by three standard deviations in the newest 36% of the
# embedded sample's rows (its eval and test windows).
SHIFTED = ("V1", "V2", "V3", "V4")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group marks into the test ids
def pytest_collection_modifyitems(config, items):
    """Refuses a test that uses an end-to-end fixture without @pytest.mark.e2e (it would slow the fast tier), and
    puts the tests of one session run into one xdist group."""
    unmarked = []
    groups = xdist_groups(items)
    for item in items:
        group = group_of(item, groups)
        if group and item.get_closest_marker("e2e") is None:
            unmarked.append(item.nodeid)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    if unmarked:
        raise pytest.UsageError("tests that run the pipeline need @pytest.mark.e2e: " + ", ".join(unmarked))


@shared_run()
def time_run(tmp_path_factory) -> CliRun:
    """The fixture run end to end with the time split (the default)."""
    result = run_cli(tmp_path_factory.mktemp("time_run"), "--data", str(FIXTURE))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@shared_run()
def lifecycle(tmp_path_factory) -> dict[str, CliRun]:
    """Runs into one output folder, in order, as a team would over time:

    first: the class_weight strategy on a fresh folder (no blessed model yet);
    unchanged: the same again (everything should come from the cache);
    oversample: another strategy (Trainer and what follows re-run);
    impossible: gates no model can meet (not blessed, nothing pushed), and a cost-based operating threshold;
    worse: a model trained for one step, with the value floors at 0 (only the baseline comparison can fail), and an
      alert budget of 40 a day as its threshold policy.
    """
    output = tmp_path_factory.mktemp("lifecycle")
    data = ("--data", str(FIXTURE))
    steps = {
        "first": ("--strategy", "class_weight"),
        "unchanged": ("--strategy", "class_weight"),
        "oversample": ("--strategy", "oversample"),
        "impossible": (
            "--strategy",
            "oversample",
            "--min-pr-auc",
            "1.0",
            "--min-recall-at-precision",
            "1.0",
            "--fn-cost",
            "10",
            "--fp-cost",
            "1",
        ),
        "worse": (
            "--strategy",
            "oversample",
            "--max-epochs",
            "1",
            "--min-pr-auc",
            "0",
            "--min-recall-at-precision",
            "0",
            "--alerts-per-day",
            "40",
        ),
    }
    return {name: run_cli(output, *data, *args) for name, args in steps.items()}


@shared_run()
def random_run(tmp_path_factory) -> CliRun:
    """The fixture run end to end with the random (hash) split."""
    result = run_cli(tmp_path_factory.mktemp("random_run"), "--data", str(FIXTURE), "--split", "random")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@shared_run()
def compare_run(tmp_path_factory) -> dict:
    """`fraud-pipeline compare` on the fixture: its process result, output folder and compare.json."""
    output = tmp_path_factory.mktemp("compare")
    proc = subprocess.run(
        [str(CLI), "compare", "--data", str(FIXTURE), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"proc": proc, "output": output, "result": json.loads((output / "compare.json").read_text())}


@shared_run()
def drifted(tmp_path_factory) -> dict[str, CliRun]:
    """The shifted sample run twice into one folder: as is (the gate should stop it), then with --accept-drift."""
    folder = tmp_path_factory.mktemp("drifted")
    data = shifted_copy(SAMPLE, folder / "shifted.csv", SHIFTED, sigmas=3.0, newest_share=0.36)
    output = folder / "output"
    return {
        "stopped": run_cli(output, "--data", str(data)),
        "accepted": run_cli(output, "--data", str(data), "--accept-drift"),
    }


@shared_run()
def replayed(tmp_path_factory) -> dict:
    """`fraud-pipeline replay` of the fixture in 3 spans with a window of 2: its process result and replay.json."""
    output = tmp_path_factory.mktemp("replay")
    proc = subprocess.run(
        [str(CLI), "replay", "--data", str(FIXTURE), "--spans", "3", "--window", "2", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((output / "replay.json").read_text())
    serving = snapshot(output / "serving")
    # The schedule's next day without a new span: the same command as the last run.
    again = run_cli(output, "--data", str(output / "spans"), "--window", "2", "--no-report")
    return {"proc": proc, "output": output, "record": record, "serving_before": serving, "again": again}


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """The pipeline compiled for both targets: {'vertex': JSON PipelineJob, 'kubeflow': YAML spec}."""
    folder = tmp_path_factory.mktemp("compiled")
    return {
        "vertex": compile_spec(folder / "vertex.json", "vertex"),
        "kubeflow": compile_spec(folder / "kubeflow.yaml", "kubeflow", "--max-epochs", "7"),
    }


def _history_job(folder, beam_args: list[str]) -> dict:
    """tests/beam_cluster/history_probe.py on a small simulated log: its returncode and stderr, the log and the
    examples it wrote (serialized), to compare with the direct runner's."""
    from datasets.simulated import simulator

    folder.mkdir(parents=True)
    data = folder / "log.csv"
    simulator.write(simulator.Settings(days=40, customers=60, terminals=15, seed=4), str(data))
    output = folder / "out"
    job = subprocess.run(
        [sys.executable, "-m", "tests.beam_cluster.history_probe", str(data), str(output), *beam_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    import tensorflow as tf

    files = sorted(str(p) for p in folder.glob("out-*"))
    records = list(tf.data.TFRecordDataset(files).as_numpy_iterator()) if files else []
    return {"returncode": job.returncode, "stderr": job.stderr, "data": str(data), "records": records}


def _on_engine(tmp_path_factory, engine: str) -> dict:
    """The fixture run with its Beam components on a real engine (tests/beam_cluster): Flink (a JobManager and two
    TaskManagers) or Spark (a master and two workers), Beam's job server for it, and a worker pool beside each
    TaskManager (Spark worker) in an environment with the project installed, as the pipeline image holds it. Then a
    small job on the same cluster whose workers Beam's Go boot starts in an environment without the project, with
    the project staged (--setup_file). Skips, saying why, where the engine cannot be had (no Java, Maven or Go, or
    the registries refused a part).

    run: the pipeline, as `time_run` but for the Beam args, --beam-workers-installed and --no-report; jobs: the
    engine's finished jobs of the run, oldest first, each with its operators; pools: the workers each pool started
    during the run; history: a job computing the history windows of a simulated log on the pools (_history_job);
    containers_during_run: how many booted containers the run started (none should); probe: the boot job
    (returncode, stderr, the lines it wrote); containers: each booted SDK worker's folder (its boot's log, whether
    its environment imports the project); pristine: whether the booted workers' environment itself imports
    the project afterwards.
    """
    from tests.beam_cluster import PROJECT_ROOT, engines, importable

    why = engines.unavailable(engine)
    if why and os.environ.get("FRAUD_PIPELINE_REQUIRE_ENGINES"):
        pytest.fail(f"no {engine} on this machine: {why}")
    if why:
        pytest.skip(f"no {engine} on this machine: {why}")
    if engine == "flink":
        from tests.beam_cluster.flink import FlinkCluster as Cluster
    else:
        from tests.beam_cluster.spark import SparkCluster as Cluster
    folder = tmp_path_factory.mktemp(engine)
    with Cluster(folder / "cluster", 2) as cluster:
        beam_args = [f"--beam-arg={a}" for a in cluster.beam_args("pool")]
        run = run_cli(
            folder / "output",
            "--data",
            str(FIXTURE),
            "--no-report",
            "--beam-workers-installed",
            *beam_args,
            timeout=ENGINE_RUN_TIMEOUT,
        )
        jobs = cluster.jobs()
        pools = cluster.pools.started()
        workers = cluster.workers
        containers_during_run = len(workers.started())
        # A simulated log's history windows, on the cluster's pools (tests/beam_cluster/history_probe.py).
        history = _history_job(folder / "history", cluster.beam_args("pool"))
        output = folder / "probe" / "out"
        probe_args = [*cluster.beam_args("boot"), f"--setup_file={PROJECT_ROOT / 'setup.py'}"]
        probe = subprocess.run(
            [sys.executable, "-m", "tests.beam_cluster.probe", str(output), *probe_args, "--job_server_timeout=86400"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
        containers = [
            {
                "boot_log": (c / "boot.log").read_text(errors="replace"),
                "installed": importable(c / "env" / "bin" / "python", "components", workers.work_dir),
            }
            for c in workers.started()
        ]
        pristine = importable(workers.python, "components", workers.work_dir)
    lines = sorted(line for path in output.parent.glob("out*") for line in path.read_text().splitlines())
    return {
        "cluster": cluster,
        "run": run,
        "jobs": jobs,
        "pools": pools,
        "containers_during_run": containers_during_run,
        "probe": {"returncode": probe.returncode, "stderr": probe.stderr, "lines": lines},
        "history": history,
        "containers": containers,
        "pristine": pristine,
    }


@shared_run(apart="engines")
def flink(tmp_path_factory) -> dict:
    return _on_engine(tmp_path_factory, "flink")


@shared_run(apart="engines")
def spark(tmp_path_factory) -> dict:
    return _on_engine(tmp_path_factory, "spark")


@shared_run()
def rehearsed(tmp_path_factory) -> dict:
    """Compiled specs rehearsed on this machine (`fraud-pipeline rehearse`), on the fixture with default flags.

    kubeflow: the Kubeflow spec three times into one root, as three scheduled runs: first (a fresh object store),
    again (the same data), changed (the fixture's oldest 95%); vertex: the Vertex PipelineJob once, compiled with
    Dataflow's Beam arguments (which the rehearsal drops), alongside the Kubeflow runs.
    """
    folder = tmp_path_factory.mktemp("rehearsed")
    data_uri = "gs://demo-bucket/fraud/data/" + FIXTURE.name
    kubeflow = compile_spec(folder / "kubeflow.yaml", "kubeflow", data=data_uri, beam_args=())
    vertex = compile_spec(folder / "vertex.json", "vertex", data=data_uri)
    header, *rows = read_csv_rows(FIXTURE)
    changed = folder / "changed-data" / FIXTURE.name
    changed.parent.mkdir()
    with gzip.open(changed, "wt", newline="") as f:
        csv.writer(f).writerows([header, *rows[: int(len(rows) * 0.95)]])

    def command(spec, root, data, *extra):
        return [str(CLI), "rehearse", str(spec), "--root", str(root), "--data", str(data), "--parallel", "1", *extra]

    def finish(proc, root) -> dict:
        stdout, stderr = proc.communicate(timeout=REHEARSAL_TIMEOUT)
        summary_path = root / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
        return {"returncode": proc.returncode, "stdout": stdout, "stderr": stderr, "summary": summary, "root": root}

    def start(spec, root, data, *extra):
        return subprocess.Popen(
            command(spec, root, data, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    serving = ("gcs", "demo-bucket", "fraud", "root", "serving")
    vertex_root = folder / "vertex-root"
    vertex_proc = start(vertex, vertex_root, FIXTURE, "--no-report")
    first_root = folder / "first-root"
    runs = {"first": finish(start(kubeflow, first_root, FIXTURE, "--no-report"), first_root)}
    runs["first"]["serving"] = snapshot(first_root.joinpath(*serving))
    # The next two scheduled runs each start from the first one's object store (a copy each, so they can run at
    # once): the same data again, and changed data.
    procs = {}
    for name, data in (("again", FIXTURE), ("changed", changed)):
        root = folder / f"{name}-root"
        shutil.copytree(first_root, root)
        procs[name] = (start(kubeflow, root, data, "--no-report"), root)
    for name, (proc, root) in procs.items():
        runs[name] = finish(proc, root)
        runs[name]["serving"] = snapshot(root.joinpath(*serving))
    return {"kubeflow": runs, "vertex": finish(vertex_proc, vertex_root), "specs": {"kubeflow": kubeflow}}
