"""The fuzzer of the CSV contract's readers (tests/fuzz/): every input it ever found a fault with is read back, and
a short fuzzing run finds nothing new. `make bench-fuzz` runs it for longer (bench/fuzz.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Fuzzing runs of tens of seconds: in make test, not in make test-fast.
pytestmark = pytest.mark.slow

FUZZ = Path(__file__).parent / "fuzz"
REGRESSIONS = sorted((FUZZ / "regressions").glob("*.bin"))
SEEDS = sorted((FUZZ / "seeds").glob("*.bin"))
ROOT = Path(__file__).parent.parent


def _env(tmp_path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "FUZZ_FINDINGS": str(tmp_path / "findings"), "TMPDIR": str(tmp_path)}


@pytest.mark.xdist_group("fuzz")
def test_every_input_the_fuzzer_found_is_refused_as_data_without_a_crash(tmp_path):
    # Each of these crashed, hung or raised before the guards: a line of a million commas (Arrow's reader killed the
    # process); a 4 MB line or header from a small gzip file; a file name that is not UTF-8 in the rejects file;
    # 8 MB of blank lines (gigabytes in Arrow's reader); lines Arrow's streaming reader stopped on with its thread still
    # reading, which aborted the process at its exit (exit 134) one time in three.
    assert len(REGRESSIONS) >= 4
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.replay", *map(str, REGRESSIONS + SEEDS)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(REGRESSIONS) + len(SEEDS)
    # The long lines and the bombs are refused as data; the seeds of valid rows are read.
    assert all(line.startswith("ok refused") for line in lines[: len(REGRESSIONS)]), lines
    assert any(line.startswith("ok read") and "rows.bin" in line for line in lines)


@pytest.mark.xdist_group("fuzz")
def test_a_short_fuzzing_run_finds_nothing(tmp_path):
    pytest.importorskip("atheris", reason="the fuzzer needs atheris (requirements.lock installs it)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    runs = 1500
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.csv_contract", f"-runs={runs}", "-max_len=4096", "-rss_limit_mb=4096",
         "-seed=1", f"-artifact_prefix={tmp_path}/", str(corpus), str(FUZZ / "seeds")],
        # A run that hangs (once in several suites, under load) dumps its threads' stacks before the timeout: the
        # assertion below then shows where.
        env={**_env(tmp_path), "FUZZ_HANG_SECONDS": "540"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"fuzzing done: {runs} inputs" in done.stderr
    findings = sorted(p.name for p in (tmp_path / "findings").glob("finding-*"))
    assert findings == [], done.stderr[-3000:]


@pytest.mark.xdist_group("fuzz")
def test_a_short_fuzzing_run_of_the_model_servers_request_checks_finds_nothing(tmp_path):
    """Any body, bytes or JSON of any shape, is a request or a BadRequestError (tests/fuzz/requests.py)."""
    pytest.importorskip("atheris", reason="the fuzzer needs atheris (requirements.lock installs it)")
    runs = 10000
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.requests", f"-runs={runs}", "-max_len=2048", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {runs} runs" in done.stderr
