"""An output folder's history: every run, read from ML Metadata and the runs' records, the rollbacks, and the lineage
of each pushed version.

A run that finished (completed, refused, rejected or failed) wrote runs/RUN/summary.json; a run that was killed did
not, and is found in ML Metadata alone (its pipeline_run context and the state of each component). Rollbacks come
from the serving folder's log (components/lib/serving.py). No TensorFlow here: ML Metadata and JSON only.
"""

import datetime
import json
import os
from pathlib import Path

import contract
from components.lib import drift, serving
from contract import OutputLayout
from pipeline.definition import config as cfg
from pipeline.definition import gates as gates_lib
from pipeline.definition import metadata
from pipeline.definition import status as st

KILLED = "killed"


def _summaries(layout: OutputLayout) -> dict[str, dict]:
    found = {}
    for path in sorted(Path(layout.runs_dir).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        # A run id that is not one (changed by hand: a path, '..') is passed over: it becomes a path below.
        if contract.is_run_id(summary.get("run_id")):
            found[summary["run_id"]] = summary
    return found


def _mlmd_runs(layout: OutputLayout, pipeline_name: str) -> tuple[dict[str, dict], str | None]:
    """run id -> {"started_at", "nodes": {component: state}, "output", "host"} for every run of the pipeline in ML
    Metadata (this folder's store, or the shared one: the runs of every folder and machine that write to it), and an
    error sentence when the store cannot be read (the history then comes from the records alone)."""
    where = metadata.location(layout.metadata_path)
    if not metadata.exists(where):
        return {}, None
    from pipeline.results.metadata import pipeline_runs

    try:
        found = pipeline_runs(where, pipeline_name)
    except Exception as e:  # noqa: BLE001 - a store that cannot be read is told, not fatal for the history.
        return {}, f"{where} could not be read ({type(e).__name__}); the history holds the run records only"
    runs = {}
    for run_id, run in found.items():
        started = datetime.datetime.fromtimestamp(run["created_ms"] / 1000, datetime.timezone.utc)
        runs[run_id] = {**run, "started_at": started.isoformat(timespec="seconds")}
    return runs, None


def _elsewhere(run_id: str, mlmd: dict, layout: OutputLayout) -> dict | None:
    """The record of a run of another output folder (a shared store's), where that folder can be read."""
    output = mlmd.get("output")
    if not output or os.path.realpath(output) == os.path.realpath(layout.root) or not contract.is_run_id(run_id):
        return None
    path = Path(OutputLayout(output).run_summary_path(run_id))
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _largest(summary: dict, pair: list[str]) -> dict | None:
    for comparison in (summary.get("drift") or {}).get("comparisons", []):
        if comparison["pair"] == pair:
            top = drift.largest(comparison["features"])
            if top:
                return {"feature": top["feature"], "value": top["value"], "threshold": top["threshold"]}
    return None


def _pushed_now(summary: dict) -> bool:
    """Did this run's Pusher copy the model (not from the cache, not already serving)?"""
    pusher = (summary.get("components") or {}).get(cfg.PUSHER) or {}
    return bool(summary.get("pushed_model")) and not summary.get("already_serving") and pusher.get("state") != "CACHED"


def _gate_outcome(summary: dict) -> str:
    status = summary.get("status")
    if status == st.COMPLETED:
        if summary.get("already_serving"):
            return "blessed, already serving"
        if not _pushed_now(summary):
            return f"blessed, from the cache: pushed earlier as {os.path.basename(summary['pushed_model'].rstrip('/'))}"
        return "blessed, pushed"
    if status == st.NOT_BLESSED:
        if summary.get("rolled_back_version"):
            return f"blessed, not pushed: rolled back as version {summary['rolled_back_version']}"
        return "refused: " + "; ".join(gates_lib.describe_failure(f) for f in summary.get("not_blessed_reasons", []))
    if status == st.DATA_REJECTED:
        return summary.get("message", "data rejected")
    return summary.get("message", "failed")


def _row(run_id: str, summary: dict | None, mlmd: dict | None, layout: OutputLayout) -> dict:
    # Where it ran: its output folder and machine (a shared store's runs come from several).
    output = (summary or {}).get("output_dir") or (mlmd or {}).get("output")
    ran = {"output": output, "host": (mlmd or {}).get("host") or metadata.ran_on(run_id)}
    if output and os.path.realpath(output) != os.path.realpath(layout.root):
        layout = OutputLayout(output)
    if summary is None:
        states = (mlmd or {}).get("nodes", {})
        unfinished = [n for n, s in states.items() if s not in ("COMPLETE", "CACHED")]
        where = unfinished[0] if unfinished else "after its last component"
        return {
            "kind": "run",
            "run_id": run_id,
            "started_at": mlmd["started_at"],
            "status": KILLED,
            "outcome": f"killed or crashed in {where} (no record written); components: {states}",
            "exit_code": None,
            **ran,
        }
    splits = summary.get("splits") or {}
    evaluation = summary.get("evaluation") or {}
    overall = evaluation.get("overall") or {}
    spans = (summary.get("input") or {}).get("spans")
    pushed = summary.get("pushed_model")
    report = Path(layout.report_dir(run_id)) / "report.html" if contract.is_run_id(run_id) else None
    return {
        "kind": "run",
        "run_id": run_id,
        "started_at": summary.get("started_at"),
        "status": summary.get("status"),
        "exit_code": summary.get("exit_code"),
        "outcome": _gate_outcome(summary),
        "data": (summary.get("input") or {}).get("path"),
        "spans": spans["window"] if spans else None,
        "rows": sum(c.get("rows") or 0 for c in splits.values()) or None,
        "frauds": sum(c.get("frauds") or 0 for c in splits.values()) or None,
        "drift": st.drift_verdict(summary),
        "skew_largest": _largest(summary, list(contract.SKEW_PAIR)),
        "drift_largest": _largest(summary, list(contract.DRIFT_PAIR)),
        "test_pr_auc": overall.get("pr_auc"),
        "recall_at_precision": overall.get("recall_at_precision"),
        "threshold": (summary.get("operating_threshold") or {}).get("threshold"),
        # A cached Pusher names the version an earlier run pushed: that run is the one that pushed it.
        "pushed_version": os.path.basename(pushed.rstrip("/")) if _pushed_now(summary) else None,
        "report": str(report) if report is not None and report.is_file() else None,
        **ran,
    }


def history(layout: OutputLayout, pipeline_name: str = cfg.DEFAULT_PIPELINE_NAME) -> dict:
    """Every run and rollback of an output folder, oldest first, and which version serves now.

    Returns:
      {"rows": [...], "serving_now": version or None, "serving_dir", "metadata_error": sentence or None}; each run
      row has run_id, started_at, status, outcome (the gate outcome, data rejection or failure in a sentence), data,
      spans, rows, frauds, drift, skew_largest, drift_largest, test_pr_auc, recall_at_precision, threshold,
      pushed_version, serving_now and report; each rollback row has at, by, from, to, archived and reason.
    """
    summaries = _summaries(layout)
    mlmd, error = _mlmd_runs(layout, pipeline_name)
    for run_id, run in mlmd.items():
        if run_id not in summaries:
            found = _elsewhere(run_id, run, layout)
            if found is not None:
                summaries[run_id] = found
    rows = [_row(run_id, summaries.get(run_id), mlmd.get(run_id), layout) for run_id in set(summaries) | set(mlmd)]
    events, log_problems = serving.read_rollback_log(layout.serving_dir)
    for event in events:
        rows.append({"kind": "rollback", "started_at": event.get("at"), **event})
    rows.sort(key=lambda r: r.get("started_at") or "")
    now = serving.serving_now(layout.serving_dir)
    serving_version = str(now[0]) if now else None
    pushed_by = [r for r in rows if r.get("pushed_version") == serving_version]
    for r in rows:
        r["serving_now"] = bool(pushed_by) and r is pushed_by[-1]
    return {
        "rows": rows,
        "serving_now": serving_version,
        "serving_dir": layout.serving_dir,
        "metadata_error": error,
        "rollback_log_problems": log_problems,
    }


def _version_folder(layout: OutputLayout, version: int) -> tuple[str, bool]:
    folder = serving.join(layout.serving_dir, str(version))
    if serving.exists(folder):
        return folder, False
    archived = serving.join(serving.archive_dir(layout.serving_dir), str(version))
    if serving.exists(archived):
        return archived, True
    kept = ", ".join(map(str, serving.complete_versions(layout.serving_dir))) or "none"
    raise ValueError(f"version {version} was not pushed to {layout.serving_dir} (versions: {kept})")


def lineage(layout: OutputLayout, version: int) -> dict:
    """What a pushed version came from: the run that pushed it, its data (files or spans, with their fingerprint),
    the code fingerprints, hyperparameters and threshold policy, the baseline it was compared with and the gates.

    Raises:
      ValueError: no such version in the serving folder or its rollback archive.
    """
    folder, archived = _version_folder(layout, version)
    carried = serving.read_lineage(folder) or {}
    pushed_by = [
        s
        for s in _summaries(layout).values()
        if _pushed_now(s) and os.path.basename(s["pushed_model"].rstrip("/")) == str(version)
    ]
    summary = pushed_by[0] if pushed_by else {}
    evaluation = summary.get("evaluation") or {}
    now = serving.serving_now(layout.serving_dir)
    return {
        "version": version,
        "path": folder,
        "serving_now": bool(now and now[0] == version),
        "rolled_back": archived,
        "identity": carried.get("identity"),
        "pushed_at": carried.get("pushed_at"),
        "run_id": summary.get("run_id"),
        "data": carried.get("data"),
        "training_config": carried.get("training_config"),
        "code_versions": summary.get("code_versions"),
        "hparams": (summary.get("trainer") or {}).get("hparams") or summary.get("hparams"),
        "threshold": summary.get("operating_threshold"),
        "baseline": evaluation.get("baseline"),
        "gates": evaluation.get("gate_results"),
        "test_metrics": evaluation.get("overall"),
        "model_uri": carried.get("model_uri"),
    }
