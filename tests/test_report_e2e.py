"""The run report: every figure, numbers equal to summary.json and TFMA, and a page Chromium renders cleanly."""

import base64
import json
import math
import re
import subprocess

import pytest
import tensorflow_model_analysis as tfma

from pipeline.report import run_page
from tests.support import CLI, FIGURE, NUMBER, assert_not_blank, at, open_in_chromium, report_path

pytestmark = pytest.mark.e2e
# Numbers the page must show, as paths into summary.json.
REQUIRED = {
    "evaluation/overall/pr_auc",
    "evaluation/overall/recall_at_precision",
    "evaluation/overall/precision",
    "evaluation/overall/recall",
    "evaluation/overall/tp",
    "evaluation/overall/fp",
    "evaluation/overall/tn",
    "evaluation/overall/fn",
    "evaluation/gates/min_pr_auc",
    "operating_threshold/threshold",
    "operating_threshold/eval/precision",
    "splits/train/rows",
    "splits/test/frauds",
    "trainer/best_epoch",
}


def test_the_run_prints_where_its_report_is(time_run):
    path = report_path(time_run)
    run_id = time_run.summary["run_id"]
    assert path == time_run.output / "runs" / run_id.replace(":", "-") / "report" / run_page.REPORT_FILE
    assert json.loads((path.parents[1] / "summary.json").read_text()) == time_run.summary


def test_every_figure_is_embedded_and_written_as_a_png(time_run):
    path = report_path(time_run)
    page = path.read_text()
    embedded = dict(FIGURE.findall(page))
    assert set(embedded) == set(run_page.FIGURES)
    for name, data in embedded.items():
        png = path.parent / f"{name}.png"
        assert png.stat().st_size > 5000, name
        assert base64.b64decode(data) == png.read_bytes(), name
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_the_numbers_shown_are_the_runs(time_run):
    page = report_path(time_run).read_text()
    shown = NUMBER.findall(page)
    keys = {key for key, _ in shown}
    assert REQUIRED <= keys, REQUIRED - keys
    for key, value in shown:
        expected = at(time_run.summary, key)
        got = float(value)
        assert (math.isnan(got) and math.isnan(expected)) or got == expected, key


def test_the_gate_table_shows_tfmas_own_outcomes(time_run):
    page = report_path(time_run).read_text()
    shown = dict(re.findall(r"data-gate='([a-z_]+)'>([a-z ]+)</td>", page))
    evaluation = time_run.summary["evaluation"]
    assert shown == {g["gate"]: g["result"] for g in evaluation["gate_results"]}
    # A first run: the value gates passed (it was blessed), the change gates had no baseline.
    assert evaluation["validation_ok"] is True
    assert sorted(shown.values()) == ["not applied", "not applied", "pass", "pass"]


def test_the_confusion_matrix_is_tfmas_and_the_models_own_decisions(time_run):
    summary = time_run.summary
    # Straight from the Evaluator's output, not through summary.json.
    metrics = {}
    for per_slice in tfma.load_metrics(summary["evaluation"]["evaluation_uri"]):
        if not per_slice.slice_key.single_slice_keys:
            for kv in per_slice.metric_keys_and_values:
                if not kv.key.model_name or kv.key.model_name == "candidate":
                    metrics[kv.key.name] = kv.value.double_value.value
    page = report_path(time_run).read_text()
    for name, label in (
        ("tn", "Legitimate Transactions Detected (True Negatives)"),
        ("fp", "Legitimate Transactions Incorrectly Detected (False Positives)"),
        ("fn", "Fraudulent Transactions Missed (False Negatives)"),
        ("tp", "Fraudulent Transactions Detected (True Positives)"),
    ):
        shown = f'<span class="num" data-key="evaluation/overall/{name}" data-value="{metrics[name]!r}">'
        assert f"{label}: {shown}" in page
    # The report scored the test split itself with the serving signature: the same four counts.
    computed = json.loads((report_path(time_run).parent / "report.json").read_text())
    test = computed["operating_points"]["test"]
    assert {k: test[k] for k in ("tp", "fp", "tn", "fn")} == {k: int(metrics[k]) for k in ("tp", "fp", "tn", "fn")}


def test_the_page_renders_in_headless_chromium(time_run, tmp_path):
    view = open_in_chromium(report_path(time_run), tmp_path / "report.png")
    assert view.errors == []
    assert [m for m in view.console if m[0] in ("error", "warning")] == []
    assert view.failed_requests == []
    assert_not_blank(view.screenshot)


def test_report_command_rewrites_a_named_run(time_run, tmp_path):
    run_id = time_run.summary["run_id"]
    target = tmp_path / "again"
    proc = subprocess.run(
        [str(CLI), "report", "--output", str(time_run.output), "--run", run_id, "--to", str(target)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"report: {target / run_page.REPORT_FILE}"
    assert {p.stem for p in target.glob("*.png")} == set(run_page.FIGURES)
    missing = subprocess.run(
        [str(CLI), "report", "--output", str(time_run.output), "--run", "2020-01-01"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert run_id.replace(":", "-") in missing.stderr
