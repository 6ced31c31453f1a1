"""The history page from a history record, one run and many: whole run numbers on the axes, the count in words."""

import re

import pytest

from pipeline.report import history_page


def _run(n: int, status: str = "completed") -> dict:
    return {
        "kind": "run",
        "run_id": f"2026-12-0{n}T00:00:00",
        "status": status,
        "outcome": "blessed",
        "exit_code": 0,
        "started_at": "2026-12-01T00:00:00",
        "rows": 1000 + n,
        "frauds": 10 + n,
        "test_pr_auc": 0.8,
        "recall_at_precision": 0.7,
        "threshold": 0.3,
        "skew_largest": {"feature": "V3", "value": 0.2, "threshold": 0.5},
        "drift_largest": None,
        "pushed_version": str(n) if status == "completed" else None,
        "serving_now": False,
        "report": None,
    }


def _record(runs: list[dict]) -> dict:
    return {"rows": runs, "serving_dir": "/out/serving", "serving_now": "1", "metadata_error": None}


@pytest.mark.parametrize("count", [1, 2, 5])
def test_the_run_axis_counts_whole_runs(count):
    figure = history_page._trends([_run(n + 1) for n in range(count)])
    for ax in figure.axes:
        if ax.get_xlabel() != "run":
            continue  # the frauds' twin axis shares the rows' x axis
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert min(ticks) >= 1 and max(ticks) <= count
        assert 1 in ticks and count in ticks


def test_the_page_says_run_or_runs(tmp_path):
    one = open(history_page.build(_record([_run(1)]), str(tmp_path / "one"))).read()
    many = open(history_page.build(_record([_run(1), _run(2, "not_blessed")]), str(tmp_path / "many"))).read()
    assert re.search(r"\b1 run\.", one) and "1 runs" not in one
    assert re.search(r"\b2 runs\.", many)
    assert "not_blessed" in many and "trends" in many
