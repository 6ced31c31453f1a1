"""The model server for real: `fraud-pipeline serve` in its own environment (KServe's model server, TensorFlow, no
TFX) on a free loopback port, talked to over HTTP as a TF Serving client would. Each test stops what it starts."""

import base64
import csv
import gzip
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import contract
from tests.support import CLI, FIXTURE, REQUEST_TIMEOUT, START_TIMEOUT, SWAP_TIMEOUT, Server, serving_python

MODEL = contract.SERVING_MODEL_NAME
SERVE_PYTHON = serving_python()  # the module skips when the serving environment is not there


def _copy_version(source: Path, serving: Path, version: int, tamper: bool = False) -> Path:
    """A push as the Pusher makes it: the whole folder written under a hidden name, then renamed into place."""
    staging = serving / f".incoming-{version}"
    shutil.copytree(source, staging)
    if tamper:
        path = staging / contract.OPERATING_THRESHOLD
        path.write_text(path.read_text().replace('"threshold"', '"threshold" ', 1))
    os.rename(staging, serving / str(version))
    return serving / str(version)


@pytest.fixture(scope="module")
def pushed(time_run, tmp_path_factory):
    """An output folder of its own holding the fixture run's pushed version (the bytes the Pusher wrote)."""
    source = Path(time_run.summary["pushed_model"])
    output = tmp_path_factory.mktemp("served")
    (output / "serving").mkdir()
    shutil.copytree(source, output / "serving" / source.name)
    return {"output": output, "version": int(source.name), "source": source}


@pytest.fixture(scope="module")
def server(pushed):
    running = Server(pushed["output"], "--key", "tx", "--poll-seconds", "0.5", "--window-rows", "100")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def rows():
    with gzip.open(FIXTURE, "rt") as f:
        found = list(csv.DictReader(f))[:120]
    return [{k: float(v) for k, v in r.items()} for r in found]


def _instances(rows, key=True):
    return [
        {**{k: v for k, v in r.items() if k != contract.LABEL}, **({"tx": f"tx-{i}"} if key else {})}
        for i, r in enumerate(rows)
    ]


def _example(row) -> str:
    import tensorflow as tf

    example = tf.train.Example()
    for name in contract.RAW_FLOAT_FEATURES:
        example.features.feature[name].float_list.value.append(row[name])
    return base64.b64encode(example.SerializeToString()).decode()


@pytest.mark.e2e
def test_both_signatures_and_v2_score_as_predict_does(server, pushed, rows, tmp_path):
    # predict, the batch path, on the same rows.
    data = tmp_path / "rows.csv"
    with open(data, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: repr(v) for k, v in r.items()} for r in rows)
    model = pushed["output"] / "serving" / str(pushed["version"])
    proc = subprocess.run(
        [
            str(CLI),
            "predict",
            "--data",
            str(data),
            "--model",
            str(model),
            "--to",
            str(tmp_path / "s.csv"),
            "--no-record",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "s.csv") as f:
        expected = np.array([float(r["probability"]) for r in csv.DictReader(f)])

    instances = _instances(rows)
    status, by_rows, headers = server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": instances})
    assert status == 200, by_rows
    assert headers["x-model-version"] == by_rows["model_version"] == str(pushed["version"])
    got = np.array([p[contract.PROBABILITY_OUTPUT][0] for p in by_rows["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)

    columns = {name: [r[name] for r in instances] for name in instances[0]}
    status, by_columns, _ = server.predict({"signature_name": contract.FEATURES_SIGNATURE, "inputs": columns})
    assert status == 200
    np.testing.assert_allclose(np.ravel(by_columns["outputs"][contract.PROBABILITY_OUTPUT]), expected, atol=1e-6)

    status, by_examples, _ = server.predict({"instances": [{"b64": _example(r)} for r in rows]})
    assert status == 200, by_examples
    got = np.array([p[contract.PROBABILITY_OUTPUT][0] for p in by_examples["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    threshold = json.loads((model / contract.OPERATING_THRESHOLD).read_text())["threshold"]
    decisions = [p[contract.DECISION_OUTPUT][0] for p in by_examples["predictions"]]
    assert decisions == (got >= np.float32(threshold)).astype(int).tolist()

    tensors = [
        {"name": n, "shape": [len(rows)], "datatype": "FP32", "data": [r[n] for r in rows]}
        for n in contract.RAW_FLOAT_FEATURES
    ]
    status, v2, _ = server.request("POST", f"/v2/models/{MODEL}/infer", {"inputs": tensors})
    assert status == 200, v2
    assert v2["model_version"] == str(pushed["version"])
    output = {o["name"]: o for o in v2["outputs"]}[contract.PROBABILITY_OUTPUT]
    np.testing.assert_allclose(output["data"], expected, atol=1e-6)


@pytest.mark.e2e
def test_tf_serving_status_and_metadata_routes(server, pushed):
    status, found, _ = server.request("GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert found["model_version_status"] == [
        {"version": str(pushed["version"]), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    status, one, _ = server.request("GET", f"/v1/models/{MODEL}/versions/{pushed['version']}")
    assert status == 200 and one == found
    assert server.request("GET", f"/v1/models/{MODEL}/versions/7")[0] == 404
    assert server.request("GET", "/v1/models/other")[0] == 404
    status, meta, _ = server.request("GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200 and meta["model_spec"]["version"] == str(pushed["version"])
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {contract.SERVING_SIGNATURE, contract.FEATURES_SIGNATURE}
    assert set(signatures[contract.FEATURES_SIGNATURE]["inputs"]) == set(contract.RAW_FLOAT_FEATURES)
    assert signatures[contract.SERVING_SIGNATURE]["inputs"][contract.SERVING_INPUT]["dtype"] == "DT_STRING"
    assert server.request("GET", "/v2/health/live")[0] == 200
    status, _, _ = server.request("GET", f"/v2/models/{MODEL}/ready")
    assert status == 200
    metrics = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    assert (
        f"fraud_model_version {float(pushed['version'])}" in text.replace("e+09", "e+09")
        or "fraud_model_version" in text
    )
    assert "request_predict_seconds" in text


@pytest.mark.e2e
def test_every_bad_request_gets_its_4xx_and_the_next_good_one_is_served(server, rows):
    good = {"signature_name": contract.FEATURES_SIGNATURE, "instances": _instances(rows[:1])}
    row = good["instances"][0]
    cases = [
        ({**good, "instances": [{**row, "V7x": 1.0}]}, None, 400, "did you mean 'V7'"),
        ({**good, "instances": [{k: v for k, v in row.items() if k != "V3"}]}, None, 400, "feature 'V3' is missing"),
        ({**good, "instances": [{**row, "Amount": "12.5"}]}, None, 400, "feature 'Amount' must be a number"),
        (json.dumps({**good, "instances": [{**row, "V1": float("nan")}]}).encode(), None, 400, "'V1' is null or NaN"),
        (b"", None, 400, "the request body is empty"),
        (b"not json", None, 400, "not JSON"),
        (json.dumps(good).encode(), {"Content-Type": "text/csv"}, 415, "is not JSON"),
        (b"{" + b" " * (9 << 20) + b"}", None, 413, "over the"),
        ({**good, "instances": good["instances"] * 10_001}, None, 413, "a request may carry 10000 at most"),
        (
            {"instances": [{"b64": base64.b64encode(b"\xff\xff not an example").decode()}]},
            None,
            400,
            "not a serialized",
        ),
        ({"instances": [{"b64": base64.b64encode(b"").decode()}]}, None, 400, "cannot score"),
        ({"signature_name": "nope", "instances": [row]}, None, 400, "not a signature of this model"),
    ]
    for body, headers, code, says in cases:
        status, answer, _ = server.predict(body, headers=headers)
        assert (status, says in answer.get("error", "")) == (code, True), (
            body if len(str(body)) < 300 else code,
            answer,
        )
        status, served, _ = server.predict(good)
        assert status == 200 and len(served["predictions"]) == 1
    assert server.proc.poll() is None


class Load:
    """Clients sending single-row requests until stopped; every answer is kept."""

    def __init__(self, server, body, clients: int = 4, limit_seconds: float = 600):
        self.server, self.body, self.answers, self.failures = server, body, [], []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_seconds
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                status, answer, _ = self.server.predict(self.body)
            except OSError as e:
                self.failures.append(repr(e))
                continue
            if status != 200:
                self.failures.append((status, answer))
            else:
                self.answers.append((time.monotonic(), answer["model_version"]))

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=REQUEST_TIMEOUT * 2)


def _wait_for(condition, what: str):
    deadline = time.monotonic() + SWAP_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {SWAP_TIMEOUT} s")


@pytest.mark.e2e
def test_a_push_and_a_rollback_under_load_lose_no_request(server, pushed, rows):
    serving = pushed["output"] / "serving"
    first = pushed["version"]
    load = Load(server, {"signature_name": contract.FEATURES_SIGNATURE, "instances": _instances(rows[:1], key=False)})
    try:
        _wait_for(lambda: len(load.answers) > 20, "requests answered before the push")
        _copy_version(pushed["source"], serving, first + 1)
        _wait_for(lambda: load.answers and load.answers[-1][1] == str(first + 1), "the pushed version serving")
        seen_pushed = len(load.answers)
        proc = subprocess.run(
            [str(CLI), "rollback", "--output", str(pushed["output"]), "--to", str(first), "--reason", "test"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        _wait_for(lambda: load.answers[-1][1] == str(first), "the rolled-back-to version serving")
        _wait_for(lambda: len(load.answers) > seen_pushed + 20, "requests answered after the rollback")
    finally:
        load.stop()
    assert load.failures == []
    versions = [v for _, v in load.answers]
    # Before the push, the push, after the rollback: each answer names the version that scored it, in that order.
    changes = [versions[0]] + [b for a, b in zip(versions, versions[1:]) if a != b]
    assert changes == [str(first), str(first + 1), str(first)], changes[:10]
    status, found, _ = server.request("GET", f"/v1/models/{MODEL}")
    states = {s["version"]: s["state"] for s in found["model_version_status"]}
    assert states == {str(first): "AVAILABLE", str(first + 1): "END"}


@pytest.mark.e2e
def test_a_tampered_version_is_refused_and_the_server_keeps_its_version(server, pushed, rows):
    serving = pushed["output"] / "serving"
    bad = pushed["version"] + 5
    _copy_version(pushed["source"], serving, bad, tamper=True)
    try:

        def refused():
            found = server.request("GET", f"/v1/models/{MODEL}/versions/{bad}")
            return found[0] == 200 and found[1]["model_version_status"][0]["state"] == "END"

        _wait_for(refused, "the tampered version refused")
        status = server.request("GET", f"/v1/models/{MODEL}/versions/{bad}")[1]["model_version_status"][0]
        assert status["status"]["error_code"] == "DATA_LOSS"
        assert contract.OPERATING_THRESHOLD in status["status"]["error_message"]
        answer = server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": _instances(rows[:1])})
        assert answer[0] == 200 and answer[1]["model_version"] == str(pushed["version"])
        assert server.predict({"instances": [{"b64": _example(rows[0])}]}, version=bad)[0] == 404
    finally:
        shutil.rmtree(serving / str(bad))


@pytest.mark.e2e
def test_recorded_requests_feed_outcomes_and_their_skew_is_measured(server, pushed, rows, tmp_path):
    import pyarrow.parquet as pq

    instances = _instances(rows)
    for start in range(0, len(instances), 40):
        batch = [{**r, "tx": f"online-{start + i}"} for i, r in enumerate(instances[start : start + 40])]
        assert server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": batch})[0] == 200
    # Rows enough to close the window the keyed rows are in (windows of 100 rows).
    filler = _instances(rows[:100], key=False)
    assert server.predict({"signature_name": contract.FEATURES_SIGNATURE, "instances": filler})[0] == 200
    scoring = pushed["output"] / "scoring"

    def closed_and_measured():
        keys, measured = set(), True
        for folder in sorted(scoring.glob("*-online")):
            keys |= set(pq.read_table(folder / "scores.parquet").column("key").to_pylist())
            measured = measured and json.loads((folder / "batch.json").read_text())["skew"].get("measured", False)
        return f"online-{len(rows) - 1}" in keys and measured

    # The serve command measures the skew of each window within seconds of its closing.
    _wait_for(closed_and_measured, "the keyed rows' windows closed, their skew measured")
    folders = sorted(scoring.glob("*-online"))
    for folder in folders:
        # Each window's record counts the rows its scores file holds (a window closes at 100 rows or more, or at a
        # version swap).
        record = json.loads((folder / "batch.json").read_text())
        assert record["rows"] == pq.read_table(folder / "scores.parquet").num_rows > 0
    window = json.loads((folders[-1] / "batch.json").read_text())
    assert window["source"] == "online" and window["key"] == "tx"
    assert window["model"]["version"] == str(pushed["version"])
    assert {f["feature"] for f in window["skew"]["comparison"]["features"]} >= {"Amount", "V1"}
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["tx", contract.LABEL])
        writer.writerows([f"online-{i}", int(r[contract.LABEL])] for i, r in enumerate(rows))
    proc = subprocess.run(
        [str(CLI), "outcomes", "--labels", str(labels), "--output", str(pushed["output"]), "--min-pr-auc", "0",
         "--min-recall-at-precision", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    outcomes = json.loads((pushed["output"] / "outcomes" / "outcomes.json").read_text())
    assert outcomes["join"]["matched_labels"] == len(rows)
    assert outcomes["overall"]["labelled"] == len(rows)
    assert outcomes["overall"]["frauds"] == sum(int(r[contract.LABEL]) for r in rows)


@pytest.mark.e2e
def test_a_server_whose_only_version_is_tampered_does_not_start(pushed, tmp_path):
    (tmp_path / "serving").mkdir()
    _copy_version(pushed["source"], tmp_path / "serving", pushed["version"], tamper=True)
    server = Server(tmp_path)
    try:
        code = server.proc.wait(timeout=START_TIMEOUT)
    finally:
        server.stop()
    assert code == 7
    assert contract.OPERATING_THRESHOLD in server.log.read_text()
