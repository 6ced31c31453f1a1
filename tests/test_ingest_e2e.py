"""End to end on the committed fixture: ingestion, statistics, validation gate, and the splits it writes."""

import pytest
import tensorflow as tf

import contract
from tests.support import ALL_COMPONENTS, FIXTURE, executions_per_node, raw_examples, read_csv_rows

pytestmark = pytest.mark.e2e


def read_split(run, split):
    """(Time, Class) of every example ExampleGen wrote for a split."""
    rows = []
    for record in raw_examples(run, split):
        example = tf.train.Example.FromString(record)
        feature = example.features.feature
        rows.append((feature[contract.TIME].float_list.value[0], feature[contract.LABEL].int64_list.value[0]))
    return rows


def fixture_totals():
    rows = read_csv_rows(FIXTURE)
    label_at = rows[0].index(contract.LABEL)
    return len(rows) - 1, sum(r[label_at] == "1" for r in rows[1:])


@pytest.mark.parametrize("run_name", ["time_run", "random_run"])
def test_every_component_executed_once(run_name, request):
    run = request.getfixturevalue(run_name)
    executions = executions_per_node(run.metadata_path)
    assert set(executions) == ALL_COMPONENTS
    for node, states in executions.items():
        assert states == ["COMPLETE"], (node, states)


@pytest.mark.parametrize("run_name", ["time_run", "random_run"])
def test_splits_hold_the_rows_and_frauds_the_summary_reports(run_name, request):
    run = request.getfixturevalue(run_name)
    total_rows, total_frauds = fixture_totals()
    summary = run.summary
    assert set(summary["splits"]) == set(contract.SPLITS)
    buckets = sum(contract.SPLIT_BUCKETS.values())
    for split in contract.SPLITS:
        rows = read_split(run, split)
        counted = {"rows": len(rows), "frauds": sum(label for _, label in rows)}
        assert summary["splits"][split] == counted, split
        share = contract.SPLIT_BUCKETS[split] / buckets
        # Quantile cuts are near exact; hash buckets vary by a few rows on ~1,000.
        tolerance = 0.01 if run_name == "time_run" else 0.05
        assert abs(len(rows) / total_rows - share) < tolerance, (split, len(rows))
    assert sum(s["rows"] for s in summary["splits"].values()) == total_rows
    assert sum(s["frauds"] for s in summary["splits"].values()) == total_frauds


def test_time_split_orders_the_splits(time_run):
    times = {split: [t for t, _ in read_split(time_run, split)] for split in contract.SPLITS}
    assert max(times["train"]) <= min(times["eval"])
    assert max(times["eval"]) <= min(times["test"])


def test_random_split_mixes_time(random_run):
    # Under hashing, the test split is not simply the newest rows.
    train = [t for t, _ in read_split(random_run, "train")]
    test = [t for t, _ in read_split(random_run, "test")]
    assert min(test) < max(train)


def test_summary_of_a_clean_run(time_run):
    summary = time_run.summary
    assert summary["status"] == "completed"
    assert summary["exit_code"] == 0
    assert summary["blessed"] is True
    assert summary["anomalies"] == []
    assert summary["input"] == {"path": str(FIXTURE), "split": "time", "spans": None}
    assert set(summary["components"]) == ALL_COMPONENTS
    assert all(c["state"] == "COMPLETE" for c in summary["components"].values())
    # The process's memory high-water mark when each component finished, recorded for every component the launch
    # hooks saw finish (compat/tfx.py): the process holds TensorFlow and TFX, so each is past 100 MB.
    peaks = {c: summary["components"][c].get("peak_rss_mb") for c in ALL_COMPONENTS}
    assert all(isinstance(p, int) and p > 100 for p in peaks.values()), peaks


def test_cli_reports_progress_and_outputs(time_run):
    for component in ALL_COMPONENTS:
        assert f"running {component}" in time_run.stderr
        assert f"finished {component}" in time_run.stderr
    assert f"outputs: {time_run.output}" in time_run.stdout
    assert "status: completed" in time_run.stdout


def test_transform_writes_its_graph_only(time_run):
    """The analyzer cache could never be read (its key holds ExampleGen's execution URI), and the Trainer applies the
    graph to ExampleGen's examples itself, so Transform writes neither (docs/benchmarks.md)."""
    transform = time_run.output / "tfx" / "Transform"
    assert (transform / "transform_graph").is_dir()
    assert not (transform / "updated_analyzer_cache").exists()
    assert not (transform / "transformed_examples").exists()
