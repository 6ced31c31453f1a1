"""The model server against the pushed model's signatures called in-process, in one invocation (make bench-serve).

Measures, on the version `make run` pushed (copied into a private folder, so the swaps touch nothing of yours):
- in-process, in the serving environment: one row at a time through each signature as it is exported (a tensor a
  feature for serving_features; one serialized tf.Example for serving_default), and through the packed call the
  server makes (pipeline/scoring/predict.py, _packed);
- the server (`fraud-pipeline serve`, recording on, as it runs by default): single-row latency over --requests
  sequential requests on one keep-alive connection, for each signature; throughput and p99 with --clients clients
  at once; the server's peak RSS; the time from a push (a version renamed into serving/) and from a rollback to the
  first response that names the new version, with the clients running, and the requests that failed meanwhile.
The clients are Python threads in this process, on the same two cores as the server: what they cost is in the
numbers. Usage: python bench/serve.py [--output output] [--requests 2000] [--clients 8] [--seconds 20]
"""

import argparse
import base64
import csv
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import contract  # noqa: E402
from components.lib import serving  # noqa: E402
from pipeline.cli.serve import serve_python  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
DATA = ROOT / "data" / "creditcard_sample.csv.gz"

IN_PROCESS = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
from pathlib import Path
from pipeline.scoring.predict import Model
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
model = Model.load(Path(sys.argv[1]))
rows = json.load(open(sys.argv[2]))
n = int(sys.argv[3])
names = sorted(model.feature_inputs)
def timed(call):
    for i in range(50):
        call(i)
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return [float(np.percentile(out, 50)) * 1e3, float(np.percentile(out, 99)) * 1e3]
def example(row):
    e = tf.train.Example()
    for k in names:
        e.features.feature[k].float_list.value.append(row[k])
    return e.SerializeToString()
serialized = [example(r) for r in rows]
def exported(i):
    return model.features(**{k: tf.constant([rows[i % len(rows)][k]], tf.float32) for k in names})
def packed(i):
    return model.score_features({k: np.asarray([rows[i % len(rows)][k]], np.float32) for k in names})
result = {
    "features_as_exported": timed(exported),
    "features_packed": timed(packed),
    "examples": timed(lambda i: model.score([serialized[i % len(rows)]])),
}
print(json.dumps(result))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: bytes) -> tuple[int, dict]:
        self.connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def get(self, path: str) -> int:
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        response.read()
        return response.status


def wait_ready(port: int, server: subprocess.Popen, deadline: float, log: Path) -> None:
    """Until the server answers ready; exits saying why when it dies or the deadline (monotonic) passes first."""
    while True:
        try:
            if Client(port).get("/v2/health/ready") == 200:
                return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit("the server did not start: " + log.read_text()[-2000:])
        time.sleep(0.2)


def bodies(rows: list[dict]) -> dict:
    import tensorflow as tf

    features, examples = [], []
    for row in rows:
        features.append(json.dumps({"signature_name": contract.FEATURES_SIGNATURE, "instances": [row]}).encode())
        e = tf.train.Example()
        for k in contract.RAW_FLOAT_FEATURES:
            e.features.feature[k].float_list.value.append(row[k])
        b64 = base64.b64encode(e.SerializeToString()).decode()
        examples.append(json.dumps({"instances": [{"b64": b64}]}).encode())
    return {"serving_features": features, "serving_default": examples}


def sequential(port: int, requests: list[bytes], n: int) -> list[float]:
    client, path = Client(port), f"/v1/models/{contract.SERVING_MODEL_NAME}:predict"
    for body in requests[:50]:
        client.post(path, body)
    out = []
    for i in range(n):
        start = time.perf_counter()
        status, _ = client.post(path, requests[i % len(requests)])
        out.append(time.perf_counter() - start)
        assert status == 200, status
    return [float(np.percentile(out, 50)) * 1e3, float(np.percentile(out, 99)) * 1e3]


class Load:
    """clients threads posting single rows until stopped; latencies, failures and the versions answered."""

    def __init__(self, port: int, requests: list[bytes], clients: int):
        self.port, self.requests = port, requests
        self.latencies, self.failures, self.versions = [], [], []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()

    def run(self, offset: int) -> None:
        client, path, i = Client(self.port), f"/v1/models/{contract.SERVING_MODEL_NAME}:predict", offset
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                status, answer = client.post(path, self.requests[i % len(self.requests)])
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(repr(e))
                client = Client(self.port)
                continue
            self.latencies.append(time.perf_counter() - start)
            if status != 200:
                self.failures.append(status)
            else:
                self.versions.append((time.monotonic(), answer["model_version"]))
            i += len(self.threads)

    def stop(self) -> dict:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=120)
        seconds = time.perf_counter() - self.started
        return {
            "requests": len(self.latencies),
            "rps": len(self.latencies) / seconds,
            "p50": float(np.percentile(self.latencies, 50)) * 1e3,
            "p99": float(np.percentile(self.latencies, 99)) * 1e3,
            "failed": len(self.failures),
        }


def until_version(load: Load, version: str, since: float, limit: float = 300) -> float:
    while time.monotonic() - since < limit:
        found = [t for t, v in load.versions[-50:] if v == version and t >= since]
        if found:
            return min(found) - since
        time.sleep(0.01)
    raise RuntimeError(f"version {version} not answering after {limit} s")


def peak_rss_mb(cli_pid: int) -> float:
    """The server process's peak RSS (the serve command's child)."""
    children = Path(f"/proc/{cli_pid}/task/{cli_pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="output", help="the output folder whose newest version is served")
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per signature")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="each concurrent phase")
    args = parser.parse_args()
    found = serving.serving_now(contract.OutputLayout(args.output).serving_dir)
    if found is None:
        sys.exit(f"no pushed model under {args.output}/serving: run `make run` first")
    version, folder = found
    with gzip.open(DATA, "rt") as f:
        rows = [
            {k: float(v) for k, v in r.items() if k != contract.LABEL} for _, r in zip(range(2000), csv.DictReader(f))
        ]
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        (work / "serving").mkdir()
        shutil.copytree(folder, work / "serving" / str(version))
        (work / "rows.json").write_text(json.dumps(rows))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
        reference = subprocess.run(
            [serve_python(), "-c", IN_PROCESS, str(work / "serving" / str(version)), str(work / "rows.json"),
             str(args.requests)],
            capture_output=True, text=True, timeout=1800, env=env, cwd=str(ROOT), check=True,
        )  # fmt: skip
        in_process = json.loads(reference.stdout.strip().splitlines()[-1])
        requests = bodies(rows)
        port = free_port()
        started = time.monotonic()
        server = subprocess.Popen(
            [str(CLI), "serve", "--output", str(work), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"), env=env,
        )  # fmt: skip
        try:
            wait_ready(port, server, started + 600, work / "serve.log")
            ready = time.monotonic() - started
            single = {name: sequential(port, bodies_, args.requests) for name, bodies_ in requests.items()}
            concurrent = {}
            for name, bodies_ in requests.items():
                load = Load(port, bodies_, args.clients)
                time.sleep(args.seconds)
                concurrent[name] = load.stop()
            # Two swaps under load: a push (a copy of the version, renamed into place as the Pusher does), then a
            # rollback to the first version.
            load = Load(port, requests["serving_features"], args.clients)
            time.sleep(2)
            staging = work / "serving" / ".incoming"
            shutil.copytree(work / "serving" / str(version), staging)
            pushed_at = time.monotonic()
            os.rename(staging, work / "serving" / str(version + 1))
            push_seconds = until_version(load, str(version + 1), pushed_at)
            time.sleep(2)
            rolled_at = time.monotonic()
            serving.rollback(str(work / "serving"), version, "bench", "bench", time.strftime("%Y-%m-%dT%H:%M:%SZ"))
            rollback_seconds = until_version(load, str(version), rolled_at)
            time.sleep(2)
            swaps = load.stop()
            rss = peak_rss_mb(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmodel server bench: version {version}, {args.requests} sequential requests a signature, "
          f"{args.clients} clients for {args.seconds:.0f} s a signature (the clients share the 2 cores)\n")  # fmt: skip
    print("| measure | serving_features (rows by name) | serving_default (base64 tf.Example) |")
    print("|---|---|---|")
    exported, examples = in_process["features_as_exported"], in_process["examples"]
    print(f"| in-process, the signature as exported: p50 / p99 ms | {exported[0]:.2f} / {exported[1]:.2f} | "
          f"{examples[0]:.2f} / {examples[1]:.2f} |")  # fmt: skip
    print(f"| in-process, the server's packed call: p50 / p99 ms | {in_process['features_packed'][0]:.2f} / "
          f"{in_process['features_packed'][1]:.2f} | (same as above) |")  # fmt: skip
    f, e = single["serving_features"], single["serving_default"]
    print(f"| server, one client, sequential: p50 / p99 ms | {f[0]:.2f} / {f[1]:.2f} | {e[0]:.2f} / {e[1]:.2f} |")
    print(f"| server p50 over the in-process call (packed / examples) ms | "
          f"{f[0] - in_process['features_packed'][0]:+.2f} | {e[0] - in_process['examples'][0]:+.2f} |")  # fmt: skip
    cf, ce = concurrent["serving_features"], concurrent["serving_default"]
    print(f"| server, {args.clients} clients: requests/s, p50 / p99 ms | {cf['rps']:.0f}, {cf['p50']:.2f} / "
          f"{cf['p99']:.2f} | {ce['rps']:.0f}, {ce['p50']:.2f} / {ce['p99']:.2f} |")  # fmt: skip
    print(f"| failed requests under load | {cf['failed']} | {ce['failed']} |")
    print(f"\n- ready after start (TensorFlow's import, manifest check, load, warm-up): {ready:.1f} s")
    print(f"- peak RSS of the server: {rss:.0f} MB")
    print(f"- a push picked up (rename to the first answer by it, poll every 2 s): {push_seconds:.2f} s; a rollback: "
          f"{rollback_seconds:.2f} s")  # fmt: skip
    print(f"- during the two swaps: {swaps['requests']} requests, {swaps['failed']} failed, p99 {swaps['p99']:.2f} ms")
    return 0 if swaps["failed"] == 0 and cf["failed"] == 0 and ce["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
