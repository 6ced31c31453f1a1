"""The one finish step after every runner's run (pipeline.runners.finish), without a pipeline: summary.json in both
places, the extra fields a runner adds, the report and history page, and a page that fails told apart without
changing the verdict. And the one "largest divergence over its threshold" every page and command reads."""

import datetime
import json

import pytest

from components.lib import drift
from contract import OutputLayout
from pipeline.report import history_page, run_page
from pipeline.results import summary as summary_lib
from pipeline.results.summary import Executed
from pipeline.results.verdict import Verdict
from pipeline.runners import finish as finish_lib

RUN_ID = "2026-12-05T01:02:03.000004"


@pytest.fixture
def pages_written(monkeypatch):
    """The pages' builders replaced by ones that record what they were given and write a file."""
    written = []

    def report(record, folder):
        written.append(("report", record["run_id"], folder))
        return f"{folder}/report.html"

    monkeypatch.setattr(run_page, "build", report)
    monkeypatch.setattr(
        history_page, "build", lambda record, folder: written.append(("history", folder)) or f"{folder}/history.html"
    )
    monkeypatch.setattr("pipeline.results.history.history", lambda layout: {"rows": []})
    return written


def _done(run_id=RUN_ID) -> Executed:
    return Executed(error=None, nodes={}, run_id=run_id, seconds={}, started=datetime.datetime.now())


def _finish(tmp_path, monkeypatch, done, **kwargs):
    verdict = Verdict("completed", 0, "model blessed")
    monkeypatch.setattr(summary_lib, "run_summary", lambda d, c, layout, path: (verdict, {"run_id": d.run_id}))
    layout = OutputLayout(str(tmp_path / "out"))
    return layout, finish_lib.finish(done, None, layout, "data.csv", **kwargs)


def test_the_summary_is_written_twice_with_the_runners_fields_and_the_pages_after(tmp_path, monkeypatch, pages_written):
    layout, finished = _finish(tmp_path, monkeypatch, _done(), extra={"rehearsal": {"tasks": {}}})
    for path in (layout.summary_path, layout.run_summary_path(RUN_ID)):
        assert json.loads(open(path).read()) == {"run_id": RUN_ID, "rehearsal": {"tasks": {}}}
    assert finished.exit_code == 0 and finished.record["rehearsal"] == {"tasks": {}}
    assert [w[0] for w in pages_written] == ["report", "history"]
    assert pages_written[0][2] == layout.report_dir(RUN_ID)
    assert finished.pages.report.endswith("report.html") and finished.pages.history.endswith("history.html")
    assert finished.pages.errors == []


def test_no_pages_when_asked_or_without_a_run_id(tmp_path, monkeypatch, pages_written):
    _, finished = _finish(tmp_path / "a", monkeypatch, _done(), pages=False)
    assert pages_written == [] and finished.pages.report is None
    layout, finished = _finish(tmp_path / "b", monkeypatch, _done(run_id=None))
    assert pages_written == [] and finished.pages.history is None
    assert json.loads(open(layout.summary_path).read()) == {"run_id": None}


def test_a_page_that_fails_is_told_apart_and_the_verdict_stands(tmp_path, monkeypatch, pages_written):
    monkeypatch.setattr(run_page, "build", lambda record, folder: 1 / 0)
    _, finished = _finish(tmp_path, monkeypatch, _done())
    assert finished.exit_code == 0 and finished.message == "model blessed"
    assert finished.pages.report is None and finished.pages.history is not None
    assert finished.pages.errors == ["the report could not be written: ZeroDivisionError: division by zero"]


def test_the_largest_divergence_is_the_largest_share_of_its_threshold():
    features = [
        {"feature": "V1", "value": 0.4, "threshold": 0.5},  # 0.8 of its threshold
        {"feature": "Class", "value": 0.14, "threshold": 0.15},  # 0.93: the largest share, not the largest value
        {"feature": "V2", "value": None, "threshold": 0.5},  # not measured
        {"feature": "Time", "value": 3.0, "threshold": 0},  # no threshold
    ]
    assert drift.largest(features)["feature"] == "Class"
    assert drift.largest(features[2:]) is None and drift.largest([]) is None
