"""The run report: every figure, numbers equal to summary.json and TFMA, and a page Chromium renders cleanly."""

import base64
import json
import math
import re
import subprocess
from pathlib import Path

import tensorflow_model_analysis as tfma

from pipeline import report
from tests.conftest import CLI, assert_not_blank, open_in_chromium

NUMBER = re.compile(r'<span class="num" data-key="([^"]+)" data-value="([^"]+)">')
FIGURE = re.compile(r'<figure id="fig-([a-z_]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)">')
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


def _report_path(run) -> Path:
    lines = [line for line in run.stdout.splitlines() if line.startswith("report: ")]
    assert len(lines) == 1, run.stdout
    return Path(lines[0].removeprefix("report: "))


def _at(summary: dict, key: str):
    value = summary
    for step in key.split("/"):
        value = value[step]
    return value


def test_the_run_prints_where_its_report_is(time_run):
    path = _report_path(time_run)
    run_id = time_run.summary["run_id"]
    assert path == time_run.output / "runs" / run_id.replace(":", "-") / "report" / report.REPORT_FILE
    assert json.loads((path.parents[1] / "summary.json").read_text()) == time_run.summary


def test_every_figure_is_embedded_and_written_as_a_png(time_run):
    path = _report_path(time_run)
    page = path.read_text()
    embedded = dict(FIGURE.findall(page))
    assert set(embedded) == set(report.FIGURES)
    for name, data in embedded.items():
        png = path.parent / f"{name}.png"
        assert png.stat().st_size > 5000, name
        assert base64.b64decode(data) == png.read_bytes(), name
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_the_numbers_shown_are_the_runs(time_run):
    page = _report_path(time_run).read_text()
    shown = NUMBER.findall(page)
    keys = {key for key, _ in shown}
    assert REQUIRED <= keys, REQUIRED - keys
    for key, value in shown:
        expected = _at(time_run.summary, key)
        got = float(value)
        assert (math.isnan(got) and math.isnan(expected)) or got == expected, key


def test_the_confusion_matrix_is_tfmas_and_the_models_own_decisions(time_run):
    summary = time_run.summary
    # Straight from the Evaluator's output, not through summary.json.
    metrics = {}
    for per_slice in tfma.load_metrics(summary["evaluation"]["evaluation_uri"]):
        if not per_slice.slice_key.single_slice_keys:
            for kv in per_slice.metric_keys_and_values:
                if not kv.key.model_name or kv.key.model_name == "candidate":
                    metrics[kv.key.name] = kv.value.double_value.value
    page = _report_path(time_run).read_text()
    for name, label in (
        ("tn", "Legitimate Transactions Detected (True Negatives)"),
        ("fp", "Legitimate Transactions Incorrectly Detected (False Positives)"),
        ("fn", "Fraudulent Transactions Missed (False Negatives)"),
        ("tp", "Fraudulent Transactions Detected (True Positives)"),
    ):
        shown = f'<span class="num" data-key="evaluation/overall/{name}" data-value="{metrics[name]!r}">'
        assert f"{label}: {shown}" in page
    # The report scored the test split itself with the serving signature: the same four counts.
    computed = json.loads((_report_path(time_run).parent / "report.json").read_text())
    test = computed["operating_points"]["test"]
    assert {k: test[k] for k in ("tp", "fp", "tn", "fn")} == {k: int(metrics[k]) for k in ("tp", "fp", "tn", "fn")}


def test_the_page_renders_in_headless_chromium(time_run, tmp_path):
    view = open_in_chromium(_report_path(time_run), tmp_path / "report.png")
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
    assert proc.stdout.strip() == f"report: {target / report.REPORT_FILE}"
    assert {p.stem for p in target.glob("*.png")} == set(report.FIGURES)
    missing = subprocess.run(
        [str(CLI), "report", "--output", str(time_run.output), "--run", "2020-01-01"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert run_id.replace(":", "-") in missing.stderr
