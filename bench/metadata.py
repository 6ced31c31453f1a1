"""Benchmark: a run with its ML Metadata on PostgreSQL against the same run on the output folder's SQLite file, and
`history` over a store of a few hundred runs, in one invocation (make bench-metadata).

For each store, alternating (SQLite then PostgreSQL, then PostgreSQL then SQLite in the next of --rounds, ...): the
sample's first run into a fresh output folder, then its cached re-run (the same command again: every component up to
the Trainer reused). Then `history --json` over --runs runs of the pipeline (eleven components each) written into
each store through ML Metadata's API (synthetic runs: what history reads of a real run, its pipeline_run context and
its components' executions, without running them). PostgreSQL 15 is started for the bench as an unprivileged user on
loopback (tests/postgres.py), a password required, fsync off; each command is a subprocess of this venv, timed from
its start to its exit; the ratio is the median over the rounds of each round's pair (its two stores' runs, next to
each other in time, so that a busy moment of the shared machine falls on both). Usage: python bench/metadata.py
[--rounds 1] [--runs 300]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.definition import config as cfg  # noqa: E402
from pipeline.definition import metadata  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
SAMPLE = ROOT / "data" / "creditcard_sample.csv.gz"
PASSWORD = "bench"
COMPONENTS = [cfg.EXAMPLE_GEN, cfg.SCHEMA_IMPORTER, cfg.STATISTICS_GEN, cfg.EXAMPLE_VALIDATOR]
COMPONENTS += [cfg.DISTRIBUTION_VALIDATOR, cfg.GATE, cfg.TRANSFORM, cfg.TRAINER, cfg.SERVING_BASELINE]
COMPONENTS += [cfg.EVALUATOR, cfg.PUSHER]


def _env(url: str | None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop(metadata.ENV_URL, None)
    if url:
        env[metadata.ENV_URL] = url
        env[metadata.ENV_PASSWORD] = PASSWORD
    return env


def timed(args: list[str], url: str | None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=_env(url), timeout=3600)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fraud-pipeline {' '.join(args[:1])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, proc


def synthetic_runs(where: str, runs: int) -> None:
    """runs runs of the pipeline, each a pipeline_run context and one COMPLETE execution a component, as TFX's
    LocalDagRunner records them (a pipeline context, a node context a component)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = metadata_store.MetadataStore(metadata.connection_config(where))
    types = {n: store.put_context_type(pb.ContextType(name=n)) for n in ("pipeline", "pipeline_run", "node")}
    pipeline = pb.Context(type_id=types["pipeline"], name=cfg.DEFAULT_PIPELINE_NAME)
    [pipeline.id] = store.put_contexts([pipeline])
    nodes = {}
    for name in COMPONENTS:
        node = pb.Context(type_id=types["node"], name=f"{cfg.DEFAULT_PIPELINE_NAME}.{name}")
        [node.id] = store.put_contexts([node])
        nodes[name] = node
    kinds = {name: store.put_execution_type(pb.ExecutionType(name=f"bench.{name}")) for name in COMPONENTS}
    for i in range(runs):
        run = pb.Context(type_id=types["pipeline_run"], name=f"2026-01-01T00:00:00.{i:06d}+bench-{i}")
        [run.id] = store.put_contexts([run])
        for name in COMPONENTS:
            execution = pb.Execution(type_id=kinds[name], last_known_state=pb.Execution.COMPLETE)
            store.put_execution(execution, [], [pipeline, run, nodes[name]], reuse_context_if_already_exist=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--runs", type=int, default=300)
    args = p.parse_args()
    from tests.postgres import PostgresServer

    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(password=PASSWORD) as server_url:
        base = server_url.rsplit("/", 1)[0]
        for round_ in range(args.rounds):
            stores = [("SQLite", None), ("PostgreSQL", f"{base}/runs{round_}")]
            for store, url in stores if round_ % 2 == 0 else stores[::-1]:  # each store first every other round
                output = Path(tmp) / f"{store}-{round_}"
                run = ["run", "--data", str(SAMPLE), "--output", str(output)]
                first, _ = timed(run, url)
                again, proc = timed(run, url)
                summary = json.loads((output / "summary.json").read_text())
                cached = sum(c["state"] == "CACHED" for c in summary["components"].values())
                times.setdefault((store, "the sample's first run"), []).append(first)
                times.setdefault((store, f"its cached re-run ({cached} components reused)"), []).append(again)
                shutil.rmtree(output, ignore_errors=True)
        for store in ("SQLite", "PostgreSQL"):
            output = Path(tmp) / f"history-{store}"
            output.mkdir()
            where = str(output / "metadata.sqlite") if store == "SQLite" else f"{base}/history"
            os.environ[metadata.ENV_PASSWORD] = PASSWORD
            if store == "PostgreSQL":
                metadata.check_server(where)
            start = time.perf_counter()
            synthetic_runs(where, args.runs)
            written = time.perf_counter() - start
            took, proc = timed(["history", "--output", str(output), "--json"], where if store != "SQLite" else None)
            listed = sum(r["kind"] == "run" for r in json.loads(proc.stdout)["rows"])
            times[(store, f"`history --json` over {listed} runs (writing them: {written:.1f} s)")] = [took]
    print(f"ML Metadata on SQLite and on PostgreSQL 15 (loopback), {args.rounds} round(s), seconds (wall, a command's")
    print("start to its exit):\n")
    print("| measure | SQLite | PostgreSQL | PostgreSQL / SQLite |")
    print("|---|---|---|---|")
    measures = list(dict.fromkeys(m for _, m in times))
    for measure in measures:
        sqlite = times.get(("SQLite", measure))
        postgres = times.get(("PostgreSQL", measure))
        if sqlite is None or postgres is None:
            for store, values in (("SQLite", sqlite), ("PostgreSQL", postgres)):
                if values:
                    print(f"| {measure} ({store}) | {', '.join(f'{v:.1f}' for v in values)} | | |")
            continue
        # A round's two runs are a pair (next to each other in time): the median of the pairs' ratios, and each.
        ratios = sorted(g / s for s, g in zip(sqlite, postgres))
        median = statistics.median(ratios)
        each = f" (the rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
        print(
            f"| {measure} | {', '.join(f'{v:.1f}' for v in sqlite)} | {', '.join(f'{v:.1f}' for v in postgres)} | "
            f"{median:.2f}{each} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
