"""What is serving and why: history and lineage over a replayed folder, the history page in a browser, rollback (also
stopped mid-way) and the run after it, and the model card of a pushed version against its run's summary."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import contract
from components.lib import serving
from components.pusher import model_card
from pipeline.definition import status as st
from tests.support import CLI, assert_not_blank, open_in_chromium, run_cli

pytestmark = pytest.mark.e2e


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=900, env=env)


def _history(output: Path) -> dict:
    proc = _cli("history", "--output", str(output), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_history_of_a_replay_has_a_row_per_run_and_names_what_serves(replayed):
    record = _history(replayed["output"])
    runs = [r for r in record["rows"] if r["kind"] == "run"]
    # The replay's three runs and the next day's cached run, in order, each with its data and outcome.
    assert len(runs) == len(replayed["record"]["runs"]) + 1
    assert runs[-1]["pushed_version"] is None and "from the cache" in runs[-1]["outcome"]
    for row, replay_row in zip(runs, replayed["record"]["runs"]):
        assert row["spans"] == replay_row["window"]
        assert row["test_pr_auc"] == pytest.approx(replay_row["test_pr_auc"])
        assert row["pushed_version"] == replay_row["pushed_version"]
        assert row["rows"] == replay_row["window_rows"]
    # The replay's runs write no pages (--no-report); its finish step writes the newest run's report once.
    assert [row["report"] is not None for row in runs[: len(replayed["record"]["runs"])]] == [False, False, True]
    serving_now = serving.serving_now(str(replayed["output"] / "serving"))
    assert record["serving_now"] == str(serving_now[0])
    assert [r["serving_now"] for r in runs].count(True) == 1
    assert next(r for r in runs if r["serving_now"])["pushed_version"] == str(serving_now[0])


def test_the_lineage_of_a_version_is_what_its_run_recorded(replayed):
    output = replayed["output"]
    version = replayed["record"]["serving"][-1]
    proc = _cli("history", "--output", str(output), "--version", version, "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    # The run that pushed it (the next day's cached run names the same version, pushed earlier).
    summaries = [json.loads(p.read_text()) for p in (output / "runs").glob("*/summary.json")]
    summary = next(
        s
        for s in summaries
        if (s.get("pushed_model") or "").endswith(version) and s["components"]["Pusher"]["state"] == "COMPLETE"
    )
    assert found["run_id"] == summary["run_id"]
    assert found["code_versions"] == summary["code_versions"]
    assert found["threshold"]["threshold"] == summary["operating_threshold"]["threshold"]
    assert found["baseline"] == summary["evaluation"]["baseline"]
    assert found["gates"] == summary["evaluation"]["gate_results"]
    window = summary["input"]["spans"]["window"]
    assert found["data"]["spans"] == window
    assert found["data"]["files"] == [f"span-{label}/part-0.csv.gz" for label in window]
    files = [str(output / "spans" / f) for f in found["data"]["files"]]
    assert found["data"]["fingerprint"] == serving.data_fingerprint(files, str(output / "spans"))
    text = _cli("history", "--output", str(output), "--version", version).stdout
    assert f"by run {summary['run_id']}" in text and "compared with: version" in text


def test_the_history_page_opens_in_a_browser(replayed, tmp_path):
    proc = _cli("history", "--output", str(replayed["output"]))
    page = Path(proc.stdout.strip().splitlines()[-1].split("page: ")[1])
    assert page.is_file()
    view = open_in_chromium(page, tmp_path / "history.png")
    assert view.errors == [] and view.failed_requests == []
    assert [m for m in view.console if m[0] == "error"] == []
    assert_not_blank(view.screenshot)
    assert "fig-trends" in page.read_text()


def test_rollback_then_run_compares_with_the_version_rolled_back_to_and_refuses_the_rolled_back_model(
    replayed, tmp_path
):
    output = tmp_path / "replay"
    shutil.copytree(replayed["output"], output)
    serving_dir = output / "serving"
    before = serving.complete_versions(str(serving_dir))
    assert len(before) >= 2
    proc = _cli("rollback", "--previous", "--reason", "too many alerts", "--output", str(output))
    assert proc.returncode == 0, proc.stderr
    assert serving.complete_versions(str(serving_dir)) == before[:-1]
    assert sorted(os.listdir(serving_dir / serving.ARCHIVE)) == sorted([str(before[-1]), serving.ROLLBACK_LOG])
    # The next day without a new span: the same model as the rolled-back one. It is compared with the version now
    # serving, and not pushed again.
    again = run_cli(output, "--data", str(output / "spans"), "--window", "2", "--no-report")
    assert again.returncode == st.EXIT_NOT_BLESSED, again.stderr[-3000:]
    assert again.summary["evaluation"]["baseline"]["serving_version"] == str(before[-2])
    assert again.summary["rolled_back_version"] == before[-1]
    assert serving.complete_versions(str(serving_dir)) == before[:-1]
    rollbacks = [r for r in _history(output)["rows"] if r["kind"] == "rollback"]
    assert [(r["from"], r["to"], r["reason"]) for r in rollbacks] == [(before[-1], before[-2], "too many alerts")]


def test_a_rollback_stopped_mid_way_leaves_a_complete_version_serving(replayed, tmp_path):
    output = tmp_path / "replay"
    shutil.copytree(replayed["output"], output)
    serving_dir = str(output / "serving")
    before = serving.complete_versions(serving_dir)
    env = dict(os.environ, FRAUD_PIPELINE_ROLLBACK_PAUSE="3")
    proc = subprocess.Popen(
        [str(CLI), "rollback", "--to", str(before[0]), "--output", str(output)], env=env, start_new_session=True
    )
    seen = []
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        visible = serving.versions(serving_dir)
        # Whatever the moment, the newest visible version is a complete one.
        assert serving.is_complete(serving.join(serving_dir, str(visible[-1])))
        seen.append(visible)
        if visible != before:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait(timeout=30)
    partial = serving.versions(serving_dir)
    assert before[0] in partial and partial != before and len(partial) < len(before)
    # Run again, it finishes the job; nothing was deleted.
    done = _cli("rollback", "--to", str(before[0]), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert serving.complete_versions(serving_dir) == [before[0]]
    assert sorted(v for v, _ in serving.rolled_back(serving_dir)) == before[1:]


def test_rollback_refuses_a_version_that_is_not_there_or_not_complete(time_run, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(time_run.output, output)
    version = serving.complete_versions(str(output / "serving"))[-1]
    missing = _cli("rollback", "--to", "12345", "--output", str(output))
    assert missing.returncode == st.EXIT_USAGE and "version 12345 is not in" in missing.stderr
    (output / "serving" / "123").mkdir()  # a copy in progress
    incomplete = _cli("rollback", "--to", "123", "--output", str(output))
    assert incomplete.returncode == st.EXIT_USAGE and "not complete" in incomplete.stderr
    same = _cli("rollback", "--to", str(version), "--output", str(output))
    assert same.returncode == st.EXIT_USAGE and "serving already" in same.stderr


def test_the_model_card_of_a_version_holds_its_runs_numbers(time_run):
    version_dir = Path(time_run.summary["pushed_model"])
    doc = json.loads((version_dir / model_card.JSON_FILE).read_text())
    summary = time_run.summary
    metrics = {(m["slice"], m["type"]): m for m in doc["quantitative_analysis"]["performance_metrics"]}
    for name, value in summary["evaluation"]["overall"].items():
        assert metrics[("overall", name)]["value"] == pytest.approx(value), name
    for slice_name, values in summary["evaluation"]["slices"].items():
        for name, value in values.items():
            assert metrics[(slice_name, name)]["value"] == pytest.approx(value), (slice_name, name)
    precision = metrics[("overall", "precision")]
    assert (
        precision["confidence_interval"]["lower_bound"]
        <= precision["value"]
        <= precision["confidence_interval"]["upper_bound"]
    )
    extra = doc["fraud_pipeline"]
    assert extra["threshold"]["threshold"] == summary["operating_threshold"]["threshold"]
    assert extra["blessed"] is summary["blessed"]
    for split, counts in summary["splits"].items():
        assert extra["training_window"]["splits"][split]["rows"] == counts["rows"]
        assert extra["training_window"]["splits"][split]["frauds"] == counts["frauds"]
    assert extra["lineage"]["identity"] == serving.identity_of(str(version_dir))
    assert doc["model_details"]["version"]["name"] == version_dir.name
    assert doc["considerations"]["limitations"] and doc["considerations"]["out_of_scope_uses"]
    markdown = (version_dir / model_card.MARKDOWN_FILE).read_text()
    assert f"{summary['evaluation']['overall']['pr_auc']:.4f}" in markdown
    assert (version_dir / model_card.HTML_FILE).read_text().startswith("<!doctype html>")
    # The card went in before the version appeared: it is part of the copy the Pusher archived too.
    assert (Path(time_run.output) / "serving" / version_dir.name / contract.LINEAGE).is_file()
