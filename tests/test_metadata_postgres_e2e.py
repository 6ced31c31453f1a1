"""One ML Metadata store for a team: runs of two output folders against a real PostgreSQL server (started here as an
unprivileged user, a password required), at once and one after the other, sharing the cache and one history; and
the store's faults (a wrong password, no server, an older MLMD schema, the server stopped mid-run) each one sentence
and exit 7, a re-run after the server is back resuming from what was committed. Skips, saying why, without
PostgreSQL (fails instead where FRAUD_PIPELINE_REQUIRE_POSTGRES is set, as .ci/run sets it)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from compat import mlmd as compat_mlmd
from pipeline.definition import config as cfg
from pipeline.definition import metadata
from pipeline.definition import status as st
from tests.postgres import PostgresServer
from tests.support import CLI, FIXTURE, RUN_TIMEOUT, UPSTREAM_OF_TRAINING

# One worker runs the module, against one server.
pytestmark = pytest.mark.xdist_group("metadata_postgres")

PASSWORD = "team-secret"
# The components whose inputs do not depend on the output folder: a second folder's run reuses the first's.
SHARED_CACHE = UPSTREAM_OF_TRAINING | {cfg.TRANSFORM, cfg.TRAINER}


def _env(password: str | None = PASSWORD) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop(metadata.ENV_URL, None)
    env.pop(metadata.ENV_PASSWORD, None)
    if password is not None:
        env[metadata.ENV_PASSWORD] = password
    return env


def _start(*args: str, password: str | None = PASSWORD) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(password)
    )


def _cli(*args: str, password: str | None = PASSWORD, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=_env(password), timeout=timeout)


def _run(output: Path, url: str, *extra: str) -> list[str]:
    return ["run", "--data", str(FIXTURE), "--output", str(output), "--metadata", url, *extra]


def _states(output: Path) -> dict:
    summary = json.loads((output / "summary.json").read_text())
    return {name: c["state"] for name, c in summary["components"].items()}


@pytest.fixture(scope="module")
def server():
    database = PostgresServer(password=PASSWORD)
    with database as url:
        database.mlmd = url.rsplit("/", 1)[0] + "/mlmd"
        yield database


@pytest.mark.e2e
def test_backslashes_are_stored_and_read_back_on_postgresql(server, monkeypatch):
    """MLMD 1.16 cannot write a string with a backslash to PostgreSQL by itself (compat.mlmd): written and read back
    through the server, each value is what was put."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    monkeypatch.setenv(metadata.ENV_PASSWORD, PASSWORD)
    where = server.url.rsplit("/", 1)[0] + "/strings"
    metadata.check_server(where)  # the database created, ML Metadata's tables in it
    store = metadata_store.MetadataStore(metadata.connection_config(where))
    kind = store.put_execution_type(metadata_store_pb2.ExecutionType(name="strings"))
    values = ["plain", "a ' quote", "back\\slash", '{"config": "{\\"name\\": \\"pr_auc\\"}"}']
    values.append(f"the marker {compat_mlmd.MARKER}b itself, then a backslash \\")
    for value in values:
        execution = metadata_store_pb2.Execution(type_id=kind)
        execution.custom_properties["p"].string_value = value
        [stored] = store.put_executions([execution])
        assert store.get_executions_by_id([stored])[0].custom_properties["p"].string_value == value


@pytest.mark.e2e
def test_two_folders_run_at_once_on_one_store_then_a_third_reuses_their_cache(server, tmp_path):
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    # Two runs started at the same moment, two processes, two output folders, one store.
    running = [_start(*_run(first, server.mlmd)), _start(*_run(second, server.mlmd))]
    for proc in running:
        out, err = proc.communicate(timeout=2 * RUN_TIMEOUT)
        assert proc.returncode == st.EXIT_OK, err[-3000:]
    summaries = [json.loads((o / "summary.json").read_text()) for o in (first, second)]
    # Each recorded its own run in the store (the URL, never a password), with its own executions.
    assert [s["metadata"] for s in summaries] == [server.mlmd, server.mlmd]
    assert summaries[0]["run_id"] != summaries[1]["run_id"]
    assert all(s["components"] and s["status"] == "completed" for s in summaries)
    assert PASSWORD not in json.dumps(summaries)
    # A third, after them, reuses what their runs produced where its inputs are equal: the data, the code, the
    # settings; what depends on its own serving folder runs again.
    proc = _cli(*_run(third, server.mlmd))
    assert proc.returncode == st.EXIT_OK, proc.stderr[-3000:]
    states = _states(third)
    assert {name for name, state in states.items() if state == "CACHED"} == SHARED_CACHE, states
    assert json.loads((third / "summary.json").read_text())["pushed_model"].startswith(str(third))
    # One history for the three folders, oldest first, each run saying where it ran.
    proc = _cli("history", "--output", str(third), "--metadata", server.mlmd, "--json")
    assert proc.returncode == 0, proc.stderr
    runs = [r for r in json.loads(proc.stdout)["rows"] if r["kind"] == "run"]
    ids = [s["run_id"] for s in summaries] + [json.loads((third / "summary.json").read_text())["run_id"]]
    assert sorted(r["run_id"] for r in runs) == sorted(ids)
    assert [r["started_at"] for r in runs] == sorted(r["started_at"] for r in runs)
    where = {r["run_id"]: r["output"] for r in runs}
    assert where == dict(zip(ids, (str(first), str(second), str(third))))
    assert all(r["status"] == "completed" and r["host"] for r in runs), runs
    # Without the store, the third folder's history is its own run alone (its own records).
    proc = _cli("history", "--output", str(third), "--json")
    assert [r["run_id"] for r in json.loads(proc.stdout)["rows"] if r["kind"] == "run"] == ids[2:]


@pytest.mark.e2e
def test_a_store_that_cannot_be_used_is_one_sentence_and_exit_7(server, tmp_path, monkeypatch):
    from ml_metadata.metadata_store import metadata_store

    output = tmp_path / "out"
    proc = _cli(*_run(output, server.mlmd), password="not-the-password")
    assert proc.returncode == st.EXIT_ENVIRONMENT
    assert "password authentication failed" in proc.stderr and metadata.ENV_PASSWORD in proc.stderr, proc.stderr
    assert "not-the-password" not in proc.stderr and "Traceback" not in proc.stderr
    nowhere = "postgresql://fraud@127.0.0.1:1/mlmd"  # nothing listens on port 1
    proc = _cli(*_run(output, nowhere))
    assert proc.returncode == st.EXIT_ENVIRONMENT and "cannot be used" in proc.stderr, proc.stderr
    # A password in the URL is refused before anything connects: a usage error.
    proc = _cli(*_run(output, f"postgresql://fraud:{PASSWORD}@127.0.0.1:{server.port}/mlmd"))
    assert proc.returncode == st.EXIT_USAGE and PASSWORD not in proc.stderr, proc.stderr
    # A store of an older ML Metadata schema is not migrated behind the team's back.
    older = server.url.rsplit("/", 1)[0] + "/older"
    monkeypatch.setenv(metadata.ENV_PASSWORD, PASSWORD)
    metadata.check_server(older)
    metadata_store.downgrade_schema(metadata.connection_config(older), 7)
    proc = _cli(*_run(output, older))
    assert proc.returncode == st.EXIT_ENVIRONMENT and "older than library version" in proc.stderr, proc.stderr
    assert not (output / "tfx").exists()


@pytest.mark.e2e
def test_the_server_stopped_mid_run_is_exit_7_and_the_next_run_resumes(server, tmp_path):
    """MLMD publishes a component's execution, its outputs and their events in one transaction: a server gone
    mid-run leaves each component recorded whole or not at all, and the re-run reuses the ones recorded whole."""
    url = server.url.rsplit("/", 1)[0] + "/resume"
    output = tmp_path / "out"
    proc = _start(*_run(output, url))
    # Until Transform has finished (the progress line on stderr): then the server goes.
    seen, deadline = "", time.monotonic() + RUN_TIMEOUT
    while f"finished {cfg.TRANSFORM}" not in seen:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, seen[-2000:]
        seen += line
        assert time.monotonic() < deadline, seen[-2000:]
    server.stop()
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        server.start()
    assert proc.returncode == st.EXIT_ENVIRONMENT, (seen + err)[-3000:]
    assert "stopped answering" in err and "run the same command again" in err, err[-2000:]
    again = _cli(*_run(output, url))
    assert again.returncode == st.EXIT_OK, again.stderr[-3000:]
    states = _states(output)
    assert {cfg.EXAMPLE_GEN, cfg.TRANSFORM} <= {n for n, s in states.items() if s == "CACHED"}, states
    assert states[cfg.PUSHER] == "COMPLETE"
