"""`make test` runs on two pytest-xdist workers, and every test of one shared pipeline run must run on the worker
that made it (else the run is made again there, minutes each). Proven on a small suite in a subprocess, with the
project's own collection hook and the pinned pytest and pytest-xdist."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = """
import os
import pytest
from tests.conftest import pytest_collection_modifyitems  # noqa: F401 - the project's hook, under test

def _made(name):
    with open(os.path.join(os.environ["WHERE"], name + "-" + os.environ["PYTEST_XDIST_WORKER"]), "w"):
        pass
    return name

@pytest.fixture(scope="session")
def time_run():
    return _made("time_run")

@pytest.fixture(scope="session")
def rehearsed():
    return _made("rehearsed")

@pytest.fixture(scope="session")
def lifecycle():
    return _made("lifecycle")
"""

TESTS = """
import os
import pytest

def _ran(name):
    with open(os.path.join(os.environ["WHERE"], "ran-" + name), "w") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.e2e
def test_reads_the_run(time_run):
    _ran("a")

@pytest.mark.e2e
def test_reads_two_runs(rehearsed, time_run):
    _ran("b")

@pytest.mark.e2e
def test_reads_the_rehearsal(rehearsed):
    _ran("c")

@pytest.mark.e2e
@pytest.mark.parametrize("n", range(4))
def test_reads_the_lifecycle(lifecycle, n):
    _ran(f"d{n}")

@pytest.mark.e2e
@pytest.mark.parametrize("run_name", ["lifecycle"])
def test_reads_a_run_by_its_name(run_name, request):
    request.getfixturevalue(run_name)
    _ran("e")

@pytest.mark.parametrize("n", range(6))
def test_reads_nothing(n):
    pass
"""


def test_the_tests_of_one_shared_run_run_on_one_worker_and_the_run_is_made_once(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_groups.py").write_text(TESTS)
    (suite / "pytest.ini").write_text("[pytest]\nmarkers = e2e: a pipeline run\n")
    where = tmp_path / "where"
    where.mkdir()
    env = {**os.environ, "WHERE": str(where), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "14 passed" in proc.stdout
    made = sorted(p.name.split("-")[0] for p in where.iterdir() if not p.name.startswith("ran-"))
    assert made == ["lifecycle", "rehearsed", "time_run"]  # each run once, on one worker
    worker = {p.name[len("ran-") :]: p.read_text() for p in where.glob("ran-*")}
    assert worker["a"] == worker["b"] == worker["c"]  # time_run's group takes the rehearsal's tests too
    assert len({worker[f"d{n}"] for n in range(4)} | {worker["e"]}) == 1


def test_the_groups_are_derived_from_the_runs_the_tests_use_together():
    """No hand-kept map: runs one test uses together share a group, a run declared apart keeps its own."""
    from types import SimpleNamespace

    from tests import conftest  # noqa: F401 - declares the project's shared runs
    from tests.support import E2E_FIXTURES, group_of, xdist_groups

    assert {"time_run", "rehearsed", "lifecycle", "flink", "spark"} <= E2E_FIXTURES
    items = [
        SimpleNamespace(fixturenames=["rehearsed", "time_run", "tmp_path"]),
        SimpleNamespace(fixturenames=["flink", "time_run"]),
        SimpleNamespace(fixturenames=["lifecycle"]),
        SimpleNamespace(fixturenames=["request"], callspec=SimpleNamespace(params={"engine": "spark"})),
        SimpleNamespace(fixturenames=["tmp_path"]),
    ]
    groups = xdist_groups(items)
    assert groups["rehearsed"] == groups["time_run"] != groups["lifecycle"]
    assert groups["flink"] == groups["spark"] == "engines" != groups["time_run"]
    assert [group_of(item, groups) for item in items] == [groups["time_run"], "engines", "lifecycle", "engines", None]
    # Without the test that uses both, the rehearsal and time_run are groups of their own.
    alone = xdist_groups(items[2:])
    assert alone["rehearsed"] != alone["time_run"]
