"""A second dataset end to end: the seeded simulated transaction log (ISO timestamps, string ids, categorical
columns, a text label, missing values) through run, predict with its key, outcomes, history and compile, by its
spec (datasets/simulated/dataset.yaml); and a spec that does not fit the data stopped before anything trains."""

import csv
import datetime
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import contract
from components.lib.card_precision import card_precision_at_k
from datasets import spec as dataset_spec
from datasets.simulated import simulator
from pipeline.definition import status
from tests.support import (
    CLI,
    CliRun,
    Server,
    evaluator_executions,
    metric_names,
    rerun_with_tfma,
    run_cli,
    serving_python,
    shared_run,
    trainer_rows,
)

SPEC = Path(dataset_spec.DATASETS_DIR) / "simulated" / "dataset.yaml"
# Small, and enough frauds in every split for the gates (the same seed writes the same file).
SETTINGS = simulator.Settings(days=45, customers=400, terminals=150, seed=0)
# The newest days are held back as the data scored after the push.
HELD_BACK = "2026-05-11"
# The run's blessing floors: PR-AUC, recall at precision 0.8.
FLOORS = (0.45, 0.3)


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> dict:
    """The simulated log, split in time: the training file, the newest days without their label, and their labels."""
    folder = tmp_path_factory.mktemp("simulated")
    full = folder / "full.csv.gz"
    proc = _cli(
        "simulate",
        *("--days", str(SETTINGS.days), "--customers", str(SETTINGS.customers)),
        *("--terminals", str(SETTINGS.terminals), "--seed", "0", "--to", str(full)),
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(gzip.open(full, "rt")))
    header, body = rows[0], rows[1:]
    time, label = header.index("tx_datetime"), header.index("label")
    old = [r for r in body if r[time] < HELD_BACK]
    new = [r for r in body if r[time] >= HELD_BACK]
    paths = {"train": folder / "train" / "log.csv", "new": folder / "new.csv", "labels": folder / "labels.csv"}
    paths["train"].parent.mkdir()
    for path, head, part in (
        (paths["train"], header, old),
        (paths["new"], [c for c in header if c != "label"], [[c for i, c in enumerate(r) if i != label] for r in new]),
        (paths["labels"], ["transaction_id", "label"], [[r[0], r[label]] for r in new]),
    ):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([head, *part])
    return {**paths, "new_rows": len(new), "new_frauds": sum(r[label] == "fraud" for r in new)}


@shared_run()
def simulated_run(tmp_path_factory, simulated) -> CliRun:
    """The simulated log's training file through the whole pipeline, by its spec."""
    # Floors of its own (not the defaults), which the version records and `outcomes` then holds it to.
    result = run_cli(
        tmp_path_factory.mktemp("simulated_run"),
        *("--data", str(simulated["train"]), "--dataset", str(SPEC)),
        *("--min-pr-auc", str(FLOORS[0]), "--min-recall-at-precision", str(FLOORS[1])),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.e2e
def test_the_simulated_log_is_trained_blessed_and_pushed_with_its_spec(simulated_run):
    summary = simulated_run.summary
    spec = dataset_spec.load(str(SPEC))
    assert summary["status"] == "completed" and summary["blessed"] is True
    assert summary["dataset"]["name"] == "simulated-transactions" and summary["dataset"]["digest"] == spec.digest()
    # Frauds are counted by the spec's label ("fraud" is 1 in the examples) in every split.
    assert all(summary["splits"][s]["frauds"] > 0 for s in contract.SPLITS)
    # The Evaluator sliced by the spec's slices.
    assert {"by_channel", "amount_bucket", "hour_bucket"} <= {s.split("=")[0] for s in summary["evaluation"]["slices"]}
    version = Path(summary["pushed_model"])
    # Card precision@100 of the spec's card, computed by TFMA in the Evaluator: what the pushed model's scores of the
    # test split give when ranked by hand.
    times, cards, labels, scores = _test_split_scored(simulated_run.output, version, spec)
    expected = card_precision_at_k(times, cards, labels, scores, 100)
    assert 0 < expected < 1
    assert summary["evaluation"]["overall"]["card_precision_at_100"] == pytest.approx(expected, abs=1e-9)
    assert dataset_spec.from_json((version / contract.DATASET_SPEC).read_text()) == spec
    lineage = json.loads((version / contract.LINEAGE).read_text())
    assert lineage["dataset"] == {"name": spec.name, "digest": spec.digest()}
    # The spec is part of the model's training identity: another spec is another model.
    assert lineage["training_config"]["dataset"] == spec.digest()
    # The floors it was blessed with, for `outcomes`.
    assert (lineage["gates"]["min_pr_auc"], lineage["gates"]["min_recall_at_precision"]) == FLOORS
    # The push seeded the online store with the newest history of the input (the longest window plus the delay),
    # and its labels, for the rows scored next.
    seeded = re.search(r"online store: ([\d,]+) rows and ([\d,]+) labels", simulated_run.stdout)
    assert seeded and int(seeded[1].replace(",", "")) > 0 and seeded[1] == seeded[2], simulated_run.stdout[-2000:]
    assert (simulated_run.output / "online_store" / "history.sqlite").is_file()


def _test_split_scored(output: Path, version: Path, spec):
    """(times, cards, labels, scores) of the test split's examples, scored by the version's examples signature."""
    import tensorflow as tf

    files = sorted((output / "tfx" / "CsvExampleGen" / "examples").glob("*/Split-test/*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")]
    serve = tf.saved_model.load(str(version)).signatures[contract.SERVING_SIGNATURE]
    scores = np.concatenate(
        [
            serve(examples=tf.constant(records[i : i + 2000]))[contract.PROBABILITY_OUTPUT].numpy().ravel()
            for i in range(0, len(records), 2000)
        ]
    )
    times, cards, labels = [], [], []
    for raw in records:
        feature = tf.train.Example.FromString(raw).features.feature
        times.append(float(feature[spec.time].int64_list.value[0]))
        card = feature[spec.card_precision.entity].bytes_list.value
        cards.append(card[0].decode() if card else None)
        labels.append(int(feature[spec.label].int64_list.value[0]))
    return np.array(times), cards, np.array(labels), scores


@pytest.mark.e2e
def test_the_raw_features_signature_scores_as_the_examples_signature_does(simulated_run):
    """TF Serving's JSON REST API sends the raw features by name: the second signature must give the same scores
    as the serialized tf.Examples, missing values included."""
    import tensorflow as tf

    version = Path(simulated_run.summary["pushed_model"])
    model = tf.saved_model.load(str(version))
    serve, by_name = model.signatures[contract.SERVING_SIGNATURE], model.signatures[contract.FEATURES_SIGNATURE]
    files = sorted((simulated_run.output / "tfx" / "CsvExampleGen" / "examples").glob("*/Split-test/*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP").take(500)]
    examples = [tf.train.Example.FromString(r) for r in records]
    inputs, missing = {}, 0
    for name, spec in by_name.structured_input_signature[1].items():
        values = []
        for example in examples:
            feature = example.features.feature[name]
            found = list(feature.float_list.value) or list(feature.int64_list.value) or list(feature.bytes_list.value)
            missing += not found
            values.append(found[0] if found else (np.nan if spec.dtype == tf.float32 else b""))
        inputs[name] = tf.constant(values, dtype=spec.dtype)
    assert missing > 0  # the comparison covers missing values
    expected = serve(examples=tf.constant(records))[contract.PROBABILITY_OUTPUT].numpy().ravel()
    got = by_name(**inputs)[contract.PROBABILITY_OUTPUT].numpy().ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.e2e
def test_predict_with_the_spec_key_then_outcomes_with_text_labels(simulated_run, simulated, tmp_path):
    output = str(simulated_run.output)
    scores = tmp_path / "scores.csv"
    proc = _cli("predict", "--data", str(simulated["new"]), "--output", output, "--to", str(scores))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(scores)))
    assert len(rows) == simulated["new_rows"]
    # The spec's key is the default --key; the time column is the spec's.
    assert rows[0]["transaction_id"].startswith("tx") and "tx_datetime" in rows[0]
    # The time column as the file had it: ISO date-times, not the epoch seconds they are stored as.
    given = {r["transaction_id"]: r["tx_datetime"] for r in csv.DictReader(open(simulated["new"]))}
    assert {r["transaction_id"]: r["tx_datetime"] for r in rows} == given
    assert {r["decision"] for r in rows} <= {"0", "1"}
    # The batch's serving skew is measured on the spec's own columns (numbers and categories), against the version's
    # training statistics, with the spec's curated schema in its SERVING environment.
    (record,) = [p for p in (simulated_run.output / "scoring").iterdir() if not p.name.endswith("-online")]
    skew = json.loads((record / "batch.json").read_text())["skew"]
    assert skew["measured"] is True, skew
    compared = {f["feature"]: f["measure"] for f in skew["comparison"]["features"]}
    spec = dataset_spec.load(str(SPEC))
    assert compared[spec.numeric[0].name] == "jensen_shannon_divergence"
    assert compared[spec.categorical[0].name] == "l_infinity"
    # The history features the online store served are in the batch's skew, as the training split had them.
    assert set(spec.history_features) <= set(compared)
    assert skew.get("schema_checked", True) is True and isinstance(skew["schema_anomalies"], list)
    assert (record / "statistics.pb").is_file()
    proc = _cli("outcomes", "--labels", str(simulated["labels"]), "--output", output)
    assert proc.returncode in (status.EXIT_OK, status.EXIT_BELOW_FLOOR), proc.stderr
    # Held to the floors the version was blessed with, not the defaults.
    version = Path(simulated_run.summary["pushed_model"]).name
    assert f"floors: PR-AUC {FLOORS[0]:g}, recall {FLOORS[1]:g} at precision 0.8 (version {version}'s blessing)" in (
        proc.stdout
    ), proc.stdout
    realized = json.loads((simulated_run.output / "outcomes" / "outcomes.json").read_text())["overall"]
    below = realized["pr_auc"] < FLOORS[0] or realized["recall_at_precision"] < FLOORS[1]
    assert proc.returncode == (status.EXIT_BELOW_FLOOR if below else status.EXIT_OK)
    found = json.loads((simulated_run.output / "outcomes" / "outcomes.json").read_text())
    # Days of ISO date-times are dates, not days since 1970.
    dates = re.findall(r"^day (\d{4}-\d{2}-\d{2}) model ", proc.stdout, re.M)
    assert dates and dates == [g["date"] for g in found["groups"]] and min(dates) >= HELD_BACK[:10], proc.stdout
    assert found["join"]["matched_labels"] == simulated["new_rows"]
    # The labels went into the online store too: the terminals' fraud rates learn from them.
    assert found["online_store"]["written"] == simulated["new_rows"], found.get("online_store")
    assert found["overall"]["frauds"] == simulated["new_frauds"]
    # The spec names the amount column: the money of the frauds caught and missed is counted.
    assert found["overall"]["fraud_amount_caught"] + found["overall"]["fraud_amount_missed"] > 0
    # Card precision@100 of the labelled scores, the cards recorded with them: as ranked by hand from the files.
    new = {r["transaction_id"]: r for r in csv.DictReader(open(simulated["new"]))}
    truth = {r["transaction_id"]: r["label"] == "fraud" for r in csv.DictReader(open(simulated["labels"]))}
    expected = card_precision_at_k(
        [_epoch(r["tx_datetime"]) for r in rows],
        [new[r["transaction_id"]]["customer_id"] or None for r in rows],
        [int(truth[r["transaction_id"]]) for r in rows],
        [float(r["probability"]) for r in rows],
        100,
    )
    assert found["overall"]["card_precision_at_100"] == pytest.approx(expected, abs=1e-6)
    assert all("card_precision_at_100" in g for g in found["groups"])


def _epoch(text: str) -> float:
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)).timestamp()


@pytest.mark.e2e
def test_the_model_server_computes_the_history_features_from_the_online_store(simulated_run, simulated, tmp_path):
    """A request carries a row's own columns; the server writes it into the online store and serves its windows; a
    request that sends a history feature itself is refused, naming it."""
    serving_python()
    output = tmp_path / "served"
    shutil.copytree(simulated_run.output / "serving", output / "serving")
    shutil.copytree(simulated_run.output / "online_store", output / "online_store")
    spec = dataset_spec.load(str(SPEC))
    rows = list(csv.DictReader(open(simulated["new"])))[:40]
    numbers = {f.name for f in spec.numeric}
    instances = [{k: (float(v) if k in numbers else v) for k, v in r.items() if v != ""} for r in rows]
    server = Server(output)
    try:
        server.wait_ready()
        status_code, body, _ = server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": instances})
        assert status_code == 200, body
        assert len(body["predictions"]) == len(rows)
        served = [p[contract.PROBABILITY_OUTPUT][0] for p in body["predictions"]]
        sent = dict(instances[0], terminal_id_count_1d=3.0)
        status_code, body, _ = server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": [sent]})
        assert status_code == 400 and "terminal_id_count_1d" in body["error"] and "history feature" in body["error"]
    finally:
        assert server.stop() == 0
    # Each row was written into the store by its key.
    import sqlite3

    with sqlite3.connect(output / "online_store" / "history.sqlite") as db:
        keys = {k for (k,) in db.execute("SELECT row_key FROM fraud_pipeline_history")}
    assert {r["transaction_id"] for r in rows} <= keys
    # The server recorded each scored row with its card; outcomes ranks the cards by the online scores.
    import pyarrow.parquet as pq

    (window,) = (output / "scoring").glob("*-online")
    recorded = pq.read_table(window / "scores.parquet").to_pydict()
    assert recorded["card"] == [r["customer_id"] or None for r in rows]
    proc = _cli("outcomes", "--labels", str(simulated["labels"]), "--output", str(output))
    assert proc.returncode in (status.EXIT_OK, status.EXIT_BELOW_FLOOR), proc.stderr
    found = json.loads((output / "outcomes" / "outcomes.json").read_text())["overall"]
    truth = {r["transaction_id"]: int(r["label"] == "fraud") for r in csv.DictReader(open(simulated["labels"]))}
    expected = card_precision_at_k(
        [_epoch(r["tx_datetime"]) for r in rows],
        [r["customer_id"] or None for r in rows],
        [truth[r["transaction_id"]] for r in rows],
        served,
        100,
    )
    assert found["card_precision_at_100"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.e2e
def test_history_and_compile_read_the_spec(simulated_run, tmp_path):
    proc = _cli("history", "--output", str(simulated_run.output), "--json")
    assert proc.returncode == 0, proc.stderr
    compiled = tmp_path / "spec.yaml"
    proc = _cli(
        "compile", "--target", "kubeflow", "--image", "gcr.io/p/fraud:1", "--pipeline-root", "gs://b/r",
        "--data", "gs://b/data/", "--output", str(compiled), "--dataset", str(SPEC),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = compiled.read_text()
    assert "/pipeline/datasets/simulated/schema.pbtxt" in text and "simulated-transactions" in text


@pytest.mark.e2e
def test_a_spec_that_does_not_fit_the_data_stops_before_anything_runs(simulated, tmp_path):
    spec = dataset_spec.load(str(SPEC)).to_dict()
    spec["categorical"][0]["name"] = "merchant"
    wrong = tmp_path / "wrong" / "dataset.yaml"
    wrong.parent.mkdir()
    wrong.write_text(json.dumps(spec))
    (wrong.parent / "schema.pbtxt").write_text((SPEC.parent / "schema.pbtxt").read_text())
    output = tmp_path / "out"
    proc = _cli("run", "--data", str(simulated["train"]), "--dataset", str(wrong), "--output", str(output))
    assert proc.returncode == status.EXIT_DATA_REJECTED, proc.stderr
    assert "categorical[0]: column 'merchant' is not in" in proc.stderr
    assert not (output / "tfx").exists()  # nothing ran
    broken = tmp_path / "broken.yaml"
    broken.write_text(SPEC.read_text().replace("format: iso8601", "format: unix"))
    proc = _cli("run", "--data", str(simulated["train"]), "--dataset", str(broken), "--output", str(output))
    assert proc.returncode == status.EXIT_USAGE and "time.format: 'unix' is not one of" in proc.stderr


@pytest.mark.e2e
def test_the_simulated_logs_evaluation_is_tfmas_own_pipelines_to_the_last_digit(simulated_run, tmp_path):
    """On a log of another shape (a text label through Transform, a slice on a raw text column, card precision@100
    reading raw cards and times), the run's Evaluator computed in process; TFMA's Beam pipeline on the same recorded
    inputs writes the same files, card precision included."""
    (which,) = evaluator_executions(simulated_run)
    assert "slices evaluated in process" in (simulated_run.output / "pipeline.log").read_text()
    ours, theirs = rerun_with_tfma(simulated_run, which, tmp_path)
    assert "card_precision_at_100" in metric_names(ours)
    assert ours["metrics"].keys() == theirs["metrics"].keys()
    for slice_key, metrics in ours["metrics"].items():
        assert metrics == theirs["metrics"][slice_key], slice_key
    assert ours == theirs


@pytest.mark.e2e
def test_the_trainer_reads_the_simulated_rows_tfx_data_accessor_reads_to_the_bit(simulated_run):
    """Text columns, missing values (sparse raw features) and vocabularies: the Trainer's own read of ExampleGen's
    files gives, through the Transform graph, the rows TFX's data accessor gives, byte for byte."""
    import tensorflow as tf
    import tensorflow_transform as tft

    graph = tft.TFTransformOutput(simulated_run.summary["artifacts"]["transform_graph"])
    spec = dataset_spec.load(SPEC)
    names = sorted(
        name
        for name, feature in graph.transformed_feature_spec().items()
        if name != spec.label and feature.dtype != tf.string
    )
    for split in ("train", "eval"):
        ours, ours_y = trainer_rows(simulated_run.summary, split, names, spec.label)
        theirs, theirs_y = trainer_rows(simulated_run.summary, split, names, spec.label, through_accessor=True)
        assert len(ours) == simulated_run.summary["splits"][split]["rows"]
        assert ours.tobytes() == theirs.tobytes() and ours_y.tobytes() == theirs_y.tobytes(), split
