"""tests/waits.py: the suite's record of each wait against its timeout."""

import subprocess
import sys

import pytest

from tests import waits


def test_a_subprocess_wait_is_recorded_where_its_timeout_is_set_and_the_tightest_comes_first(tmp_path, monkeypatch):
    path = tmp_path / "waits.jsonl"
    monkeypatch.setenv(waits.WAITS, str(path))
    waits.install()  # conftest installed it already: a second install changes nothing
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], timeout=60)  # one place
    subprocess.run([sys.executable, "-c", "pass"])  # no timeout: not recorded
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)  # another, expired
    waits.waited(10.0, 9.0, site="somewhere.py:1")
    places = waits.summary(str(path))
    expired, loop = places[0], places[1]  # the expired wait used all its timeout; the loop 90%
    assert expired["expired"] and expired["site"].startswith("tests/test_waits_unit.py:")
    assert loop["site"] == "somewhere.py:1"
    slept = places[2]
    assert slept["site"].startswith("tests/test_waits_unit.py:") and slept["waits"] == 1
    assert 0.3 <= slept["seconds"] < 60 and slept["timeout"] == 60 and not slept["expired"]
    assert len(places) == 3
    text = waits.lines(places)
    assert "2 used more than 50% of it" in text[0] and "somewhere.py:1" in text[0]
    assert any("EXPIRED" in line for line in text)


def test_a_torn_line_of_a_killed_worker_is_passed_over(tmp_path):
    path = tmp_path / "waits.jsonl"
    path.write_text('{"site": "a.py:1", "timeout": 10, "seconds": 1, "expired": false}\n{"site": "b.py')
    assert [p["site"] for p in waits.summary(str(path))] == ["a.py:1"]
