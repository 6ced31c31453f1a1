"""The Beam components on real engines (tests/beam_cluster): Apache Flink and Apache Spark clusters on this machine,
Beam's job servers for them, and SDK workers from a pool beside each TaskManager whose environment has the project,
as the pipeline image does. Every Beam component's job reaches the engine, nothing is staged, and what the workers
compute equals the direct runner's; a second job on the same cluster has its workers started by Beam's Go boot
without the project, and they install what it stages."""

import glob

import numpy as np
import pytest
import tensorflow as tf

import contract
from datasets import spec as dataset_spec
from pipeline.definition import config as cfg
from tests.support import CliRun, raw_examples, trainer_rows

ENGINES = ["flink", "spark"]
# The pipeline's Beam components, in the order they run, each with an operator name that only its job has. The
# others (ImportSchemaGen, ExampleValidator, DistributionValidator, AnomaliesGate, Trainer, ServingBaseline,
# Pusher) use no Beam and run in the orchestrating process on every runner.
BEAM_COMPONENTS = {
    cfg.EXAMPLE_GEN: "WriteSplit[train]",
    cfg.STATISTICS_GEN: "GenerateStatistics[train]",
    cfg.TRANSFORM: "Analyze",
    cfg.EVALUATOR: "ExtractEvaluateAndWriteResults",
}
PARALLELISM = 2  # two TaskManagers of one slot; two Spark executor cores


def _files(run: CliRun, component: str, output: str, split: str) -> list[str]:
    """The files of one split of a component's output artifact in a run's folder."""
    folders = glob.glob(str(run.output / "tfx" / component / output / "*" / contract.split_dir(split)))
    assert len(folders) == 1, folders
    return sorted(glob.glob(f"{folders[0]}/*"))


def _statistics(run: CliRun, split: str) -> tuple[dict, dict]:
    """A split's statistics by feature (the order of the features in the file is the order they were merged in),
    and apart each numeric feature's mean and standard deviation: float sums whose last bits depend on how the rows
    were batched (on the direct runner StatisticsGen computes in process: components/statistics_gen/component.py)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    (path,) = _files(run, cfg.STATISTICS_GEN, "statistics", split)
    assert path.endswith(contract.STATISTICS_FILE)
    with open(path, "rb") as f:
        (dataset,) = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read()).datasets
    by_feature = {tuple(feature.path.step): feature for feature in dataset.features}
    assert set(by_feature) == {(column,) for column in contract.RAW_COLUMNS}
    sums = {}
    for name, feature in by_feature.items():
        if feature.HasField("num_stats"):
            sums[(*name, "mean")], sums[(*name, "std_dev")] = feature.num_stats.mean, feature.num_stats.std_dev
            feature.num_stats.ClearField("mean")
            feature.num_stats.ClearField("std_dev")
    return {"num_examples": dataset.num_examples, **by_feature}, sums


def _examples(run: CliRun, split: str) -> list[tuple]:
    """A split's examples as sorted (feature, values) pairs, in a stable order: the serialized bytes are not
    comparable, since a writer may put a map's entries in any order."""
    rows = []
    for record in raw_examples(run, split):
        features = tf.train.Example.FromString(record).features.feature
        rows.append(
            tuple(
                sorted(
                    (name, (*f.float_list.value, *f.int64_list.value, *f.bytes_list.value))
                    for name, f in features.items()
                )
            )
        )
    return sorted(rows)


def _scores(model_dir: str, examples: list[bytes]) -> np.ndarray:
    model = tf.saved_model.load(model_dir)
    outputs = model.signatures[contract.SERVING_SIGNATURE](**{contract.SERVING_INPUT: tf.constant(examples)})
    return outputs[contract.PROBABILITY_OUTPUT].numpy().ravel()


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_every_beam_component_ran_as_a_job_of_the_engine(engine, request):
    on = request.getfixturevalue(engine)
    run, jobs = on["run"], on["jobs"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--runner=PortableRunner" in run.summary["beam_args"]
    # One finished job per Beam component, in the pipeline's order: none of them ran in process instead.
    ran = []
    for job in jobs:
        assert job["state"] == "FINISHED", job
        (component,) = [c for c, marker in BEAM_COMPONENTS.items() if any(marker in op for op in job["operators"])]
        ran.append(component)
    assert ran == list(BEAM_COMPONENTS)
    # No job carried jars: the job server asked engines.STAGING_NOTHING what to send with each job (one line a job in
    # its log; without the option reaching it, Beam's default sends its whole class path), and the jobs ran on Beam's
    # runner from the cluster's own class path (Flink's JobManager and TaskManagers; Spark's executors, through
    # their workers' SPARK_DIST_CLASSPATH).
    log = (on["cluster"].folder / "job-server.log").read_text(errors="replace")
    assert log.count("StageNothing: no jar staged for this job") >= len(jobs), log[-3000:]
    # Each job spread over the engine: its stages ran at the cluster's parallelism, on both TaskManagers or
    # executor cores.
    for job in jobs:
        assert job["parallelism"] == PARALLELISM, job
        assert len(job["workers"]) == PARALLELISM, job


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_the_runs_workers_came_from_each_taskmanagers_pool_with_nothing_staged(engine, request):
    on = request.getfixturevalue(engine)
    run = on["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    # --beam-workers-installed: the CLI staged nothing (no sdist built, no --setup_file, no TFX package), and no
    # worker was booted in a container of its own during the run.
    assert "added --beam-arg=--setup_file" not in run.stderr and "Building sdist" not in run.stderr
    assert not [a for a in run.summary["beam_args"] if a.startswith(("--setup_file", "--extra_package"))]
    assert on["containers_during_run"] == 0
    # Every TaskManager (Spark worker) asked its own pool for workers, and no more than two per component each:
    # the stages of a job share their TaskManager's worker (--environment_cache_millis), and a worker is a thread
    # of a process that imported TensorFlow and the project once, at the cluster's start.
    pools = on["pools"]
    assert len(pools) == PARALLELISM and all(pools.values()), pools
    for name, started in pools.items():
        assert len(started) <= 2 * len(BEAM_COMPONENTS), (name, started)


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_beams_boot_installs_the_project_a_job_stages(engine, request):
    on = request.getfixturevalue(engine)
    probe = on["probe"]
    assert probe["returncode"] == 0, probe["stderr"][-3000:]
    # The probe's only step is contract.split_dir, pickled by reference: it ran on workers that imported the project.
    from tests.beam_cluster.probe import SPLITS

    assert probe["lines"] == sorted(contract.split_dir(split) for split in SPLITS)
    containers = on["containers"]
    assert containers
    for container in containers:
        # Beam's Go boot (sdks/python/container/boot.go) prints these; it fetched the staged sdist from the job
        # server's artifact service into its own folder, installed it, and the container's environment has it.
        assert "Provision info:" in container["boot_log"]
        assert "/staged/workflow.tar.gz (sha256: " in container["boot_log"]
        assert container["installed"], container["boot_log"][-2000:]
    # The environment every container starts from still has no project: only what the job shipped put it there.
    assert not on["pristine"]


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_computes_what_the_direct_runner_does(engine, request, time_run):
    remote = request.getfixturevalue(engine)["run"]
    assert remote.returncode == 0, remote.stderr[-3000:]
    # CsvExampleGen: the same splits.
    assert remote.summary["splits"] == time_run.summary["splits"]
    for split in contract.SPLITS:
        # StatisticsGen: the same statistics, histograms and quantiles included.
        (remote_stats, remote_sums), (local_stats, local_sums) = (
            _statistics(remote, split),
            _statistics(time_run, split),
        )
        assert remote_stats == local_stats, split
        assert remote_sums == pytest.approx(local_sums, rel=1e-12, abs=1e-12) and len(local_sums) == 60, split
        # The same examples, in any order.
        assert _examples(remote, split) == _examples(time_run, split), split
    for split in contract.TRAINING_SPLITS:
        # Transform (its analyzers ran on the engine): the same statistics in its graph, so the Trainer reads the
        # same rows through it, to float rounding at most.
        (ours, ours_y), (theirs, theirs_y) = trainer_rows(remote.summary, split), trainer_rows(time_run.summary, split)
        assert ours.shape == theirs.shape and ours.shape[0] > 0
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ours_y, theirs_y)
    # Trainer (not Beam) and Evaluator: the same model, threshold, metrics and verdict.
    assert remote.summary["operating_threshold"]["threshold"] == pytest.approx(
        time_run.summary["operating_threshold"]["threshold"], abs=1e-6
    )
    ours, theirs = remote.summary["evaluation"]["overall"], time_run.summary["evaluation"]["overall"]
    assert ours.keys() == theirs.keys()
    for metric, value in theirs.items():
        assert ours[metric] == pytest.approx(value, abs=1e-6), metric
    assert remote.summary["blessed"] is time_run.summary["blessed"] is True
    # Pusher: the pushed models score the test split alike.
    examples = []
    for record in raw_examples(time_run, "test"):
        example = tf.train.Example.FromString(record)
        del example.features.feature[contract.LABEL]
        examples.append(example.SerializeToString())
    np.testing.assert_allclose(
        _scores(remote.summary["pushed_model"], examples),
        _scores(time_run.summary["pushed_model"], examples),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_the_history_windows_on_the_engine_equal_the_direct_runners(engine, request, tmp_path):
    """A simulated log's history windows (ExampleGen's Beam step: a grouping by entity, a join by row) computed on
    the cluster's workers and on the direct runner: the same examples, every window equal."""
    from tests.beam_cluster import history_probe

    history = request.getfixturevalue(engine)["history"]
    assert history["returncode"] == 0, history["stderr"][-3000:]
    history_probe.main(history["data"], str(tmp_path / "out"), ["--runner=DirectRunner"])
    local = list(tf.data.TFRecordDataset([str(p) for p in tmp_path.glob("out-*")]).as_numpy_iterator())

    def windows(records):
        spec = dataset_spec.load(history_probe.SPEC)
        out = {}
        for record in records:
            feature = tf.train.Example.FromString(record).features.feature
            out[feature[spec.key].bytes_list.value[0]] = [feature[n].float_list.value[0] for n in spec.history_features]
        return out

    remote, direct = windows(history["records"]), windows(local)
    assert len(remote) == len(history["records"]) > 1000 and remote.keys() == direct.keys()
    assert remote == direct
    assert any(w[-1] > 0 for w in direct.values())  # the terminals' delayed fraud rates saw frauds
