"""The Beam components on a portable runner whose SDK workers start without the project (tests/beam_cluster):
the run ships the project to them, and what they compute equals the direct runner's."""

import glob

import numpy as np
import pytest

import contract
from pipeline import config as cfg
from tests.support import ROOT, CliRun, trainer_rows

# The pipeline's Beam-based components: each runs as one job on the cluster.
BEAM_JOBS = 4
WORKERS_PER_JOB = 2


def _files(run: CliRun, component: str, output: str, split: str) -> list[str]:
    """The files of one split of a component's output artifact in a run's folder."""
    folders = glob.glob(str(run.output / "tfx" / component / output / "*" / contract.split_dir(split)))
    assert len(folders) == 1, folders
    return sorted(glob.glob(f"{folders[0]}/*"))


def _statistics(run: CliRun, split: str) -> tuple[dict, dict]:
    """A split's statistics by feature (the order of the features in the file is the order they were merged in),
    and apart each numeric feature's mean and standard deviation: float sums whose last bits depend on how the rows
    were batched (on the direct runner StatisticsGen computes in process: components/statistics_gen.py)."""
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


@pytest.mark.e2e
def test_workers_start_without_the_project(portable):
    # The control: a job that maps one of the project's functions and ships nothing fails on the worker, and the
    # failing worker runs in the cluster's environment, not this one.
    assert "No module named 'components'" in portable["unshipped"]
    assert str(portable["control"].folder / "env") in portable["unshipped"]


@pytest.mark.e2e
def test_the_run_ships_the_project_to_the_workers(portable):
    run, logs = portable["run"], portable["logs"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"added --beam-arg=--setup_file={ROOT / 'setup.py'}" in run.stderr
    assert {"--runner=PortableRunner", f"--setup_file={ROOT / 'setup.py'}"} <= set(run.summary["beam_args"])
    # The workers' boot fetched the staged sdist and installed it, after which the environment has the project.
    assert "retrieved workflow.tar.gz" in logs["worker-pool"] and "workflow.tar.gz" in logs["worker-pool"]
    assert portable["installed"]
    # Every Beam component ran as a job of the cluster, each on two SDK worker processes.
    assert logs["job-service"].count("with state DONE") == BEAM_JOBS
    assert logs["worker-pool"].count("Starting worker with command") == BEAM_JOBS * WORKERS_PER_JOB


@pytest.mark.e2e
def test_the_workers_compute_what_the_direct_runner_does(portable, time_run):
    remote = portable["run"]
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
    for split in contract.TRAINING_SPLITS:
        # Transform (its analyzers ran on the workers): the same statistics in its graph, so the Trainer reads the
        # same rows through it, to float rounding at most.
        (ours, ours_y), (theirs, theirs_y) = trainer_rows(remote.summary, split), trainer_rows(time_run.summary, split)
        assert ours.shape == theirs.shape and ours.shape[0] > 0
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ours_y, theirs_y)
    # Trainer (not Beam) and Evaluator: the same model and the same metrics.
    assert remote.summary["operating_threshold"]["threshold"] == pytest.approx(
        time_run.summary["operating_threshold"]["threshold"], abs=1e-6
    )
    ours, theirs = remote.summary["evaluation"]["overall"], time_run.summary["evaluation"]["overall"]
    assert ours.keys() == theirs.keys()
    for metric, value in theirs.items():
        assert ours[metric] == pytest.approx(value, abs=1e-6), metric
