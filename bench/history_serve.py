"""Benchmark: what the history features' lookup costs a single-row request, on SQLite and on PostgreSQL (loopback).

Trains the simulated log's spec (with its history section) on a small simulated log (or takes --output of a run
that pushed one), then for each store:
- in-process: the online store's own call for one request (pipeline/online_store/store.py, `enrich`: the row written,
  then its windows read, six aggregates a window), p50 and p99 over --requests rows of later days, in time order;
- the model server (`fraud-pipeline serve --no-record`): single-row latency over --requests sequential requests on
  one keep-alive connection, the features signature, with the history lookup in it; the reference is a second
  server on the same version answering the same rows with the store's work skipped (its rows get the empty windows:
  FRAUD_PIPELINE_NO_HISTORY_LOOKUP, a switch for this measurement only), running at the same time, the requests
  alternating between the two so that a busy moment of the shared machine falls on both.
PostgreSQL is started for the run as an unprivileged user (tests/postgres.py's server). Usage:
python bench/history_serve.py [--output DIR] [--requests 2000]
"""

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import contract  # noqa: E402
from datasets import spec as dataset_spec  # noqa: E402
from datasets.simulated import simulator  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
SPEC = ROOT / "datasets" / "simulated" / "dataset.yaml"
SETTINGS = simulator.Settings(days=45, customers=400, terminals=150, seed=0)
HELD_BACK = "2026-05-11"


def prepare(folder: Path) -> tuple[Path, list[dict]]:
    """A run of the simulated spec on the log's older days, pushed; the newest days' rows as requests."""
    log = folder / "log.csv.gz"
    simulator.write(SETTINGS, str(log))
    rows = list(csv.DictReader(gzip.open(log, "rt")))
    old = [r for r in rows if r["tx_datetime"] < HELD_BACK]
    new = [r for r in rows if r["tx_datetime"] >= HELD_BACK]
    train = folder / "train.csv"
    with open(train, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(old)
    output = folder / "output"
    proc = subprocess.run(
        [str(CLI), "run", "--dataset", str(SPEC), "--data", str(train), "--output", str(output)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the run did not push: {proc.stderr[-2000:]}")
    return output, new


def instances(rows: list[dict]) -> list[dict]:
    spec = dataset_spec.load(str(SPEC))
    numbers = {f.name for f in spec.numeric}
    return [{k: (float(v) if k in numbers else v) for k, v in r.items() if v != "" and k != spec.label} for r in rows]


def in_process(spec, output: Path, url: str | None, rows: list[dict]) -> list[float]:
    from pipeline.online_store.store import OnlineStore

    store = OnlineStore.open(spec, output, url)
    typed = []
    for row in rows:
        typed.append({k: (spec.time_of(v) if k == spec.time else v) for k, v in row.items()})
    took = []
    for row in typed:
        start = time.perf_counter()
        store.enrich([dict(row)])
        took.append(time.perf_counter() - start)
    store.close()
    return [float(np.percentile(took, q)) * 1e3 for q in (50, 99)]


def _start(output: Path, url: str | None, skip: bool):
    from serve import free_port

    port, log = free_port(), output / f"serve{'-skip' if skip else ''}.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **({"FRAUD_PIPELINE_NO_HISTORY_LOOKUP": "1"} if skip else {}))
    flags = ["--online-store", url] if url else []
    proc = subprocess.Popen(
        [str(CLI), "serve", "--output", str(output), "--port", str(port), "--no-record", *flags],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=env,
    )
    return proc, port, log


def servers(output: Path, url: str | None, rows: list[dict], n: int) -> tuple[list[float], list[float]]:
    """The two servers on the same version, at once: the reference (the lookup skipped) and the lookup; the requests
    alternate between them (the same row to each, which goes first alternating too), so both see the machine as it
    is at that moment. (p50, p99) of each."""
    from serve import Client, wait_ready

    started = [_start(output, url, skip) for skip in (True, False)]
    try:
        for proc, port, log in started:
            wait_ready(port, proc, time.monotonic() + 600, log)
        clients = [Client(port) for _, port, _ in started]
        path = f"/v1/models/{contract.SERVING_MODEL_NAME}:predict"
        bodies = [
            json.dumps({"signature_name": contract.FEATURES_SIGNATURE, "instances": [row]}).encode() for row in rows
        ]
        for body in bodies[:50]:
            for client in clients:
                client.post(path, body)
        took = ([], [])
        for i in range(n):
            body = bodies[(50 + i) % len(bodies)]
            for which in (0, 1) if i % 2 else (1, 0):
                start = time.perf_counter()
                status, answer = clients[which].post(path, body)
                took[which].append(time.perf_counter() - start)
                if status != 200:
                    raise SystemExit(f"request refused: {answer}")
        return tuple([float(np.percentile(t, q)) * 1e3 for q in (50, 99)] for t in took)
    finally:
        for proc, _, _ in started:
            proc.terminate()
        for proc, _, _ in started:
            proc.wait(timeout=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", help="the output folder of a run of the simulated spec that pushed a model")
    p.add_argument("--requests", type=int, default=2000)
    args = p.parse_args()
    from tests.postgres import PostgresServer

    spec = dataset_spec.load(str(SPEC))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.output:
            output = Path(args.output)
            log = folder / "log.csv.gz"
            simulator.write(SETTINGS, str(log))
            new = [r for r in csv.DictReader(gzip.open(log, "rt")) if r["tx_datetime"] >= HELD_BACK]
        else:
            print("training the simulated spec on its older days ...", flush=True)
            output, new = prepare(folder)
        requests = instances(new)
        table = []
        with PostgresServer() as url:
            for name, store_url in (("SQLite", None), ("PostgreSQL", url)):
                for mode in ("in-process", "server"):
                    # A copy of the pushed version and of the store the push seeded, for each measurement.
                    where = folder / f"{name}-{mode}"
                    shutil.copytree(output / "serving", where / "serving")
                    shutil.copytree(output / "online_store", where / "online_store")
                    if mode == "in-process":
                        p50, p99 = in_process(spec, where, store_url, requests[: args.requests])
                        table.append((name, "the store's lookup for one row (in process)", p50, p99))
                    else:
                        plain, full = servers(where, store_url, requests, args.requests)
                        table.append((name, "server, lookup skipped (reference)", *plain))
                        table.append((name, "server, with the lookup", *full))
                        table.append((name, "what the lookup adds", full[0] - plain[0], full[1] - plain[1]))
    print("| store | what | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|")
    for name, what, p50, p99 in table:
        print(f"| {name} | {what} | {p50:.2f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
