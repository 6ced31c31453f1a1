"""Faults a team meets: a run killed mid-way, two runs at once on one folder; and data that only looks different
(byte order mark, CRLF line ends, quoted and reordered columns, labels written as 0.0/1.0) is the same data."""

import json
import os
import signal
import subprocess
import time

import pytest

import contract
from pipeline import config as cfg
from pipeline import status
from tests.support import CLI, FIXTURE, UPSTREAM_OF_TRAINING, read_csv_rows, run_cli

pytestmark = pytest.mark.e2e

ROWS = 300


def _spreadsheet_export(path):
    """The fixture's first rows as a spreadsheet tool or pandas writes them: a byte order mark, CRLF line ends,
    quoted column names in another order, and labels as floats (0.0, 1.0)."""
    rows = read_csv_rows(FIXTURE)
    header, body = rows[0], rows[1 : ROWS + 1]
    label = header.index(contract.LABEL)
    order = list(reversed(range(len(header))))
    lines = [",".join(f'"{header[i]}"' for i in order)]
    lines += [",".join(f"{int(r[i])}.0" if i == label else r[i] for i in order) for r in body]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    return path, len(body), sum(r[label] == "1" for r in body)


def test_a_run_killed_in_the_trainer_resumes_from_the_cache(tmp_path):
    data, rows, frauds = _spreadsheet_export(tmp_path / "data" / "export.csv")
    output = tmp_path / "out"
    args = [str(CLI), "run", "--data", str(data), "--output", str(output), "--no-report"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        for line in proc.stderr:
            if f"running {cfg.TRAINER}" in line:
                break
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (output / "serving").exists() or not any((output / "serving").iterdir())

    again = run_cli(output, "--data", str(data), "--no-report")

    assert again.returncode == status.EXIT_OK, again.stderr[-3000:]
    states = {node: c["state"] for node, c in again.summary["components"].items()}
    # Everything the killed run finished comes from the cache; the Trainer and what follows run now.
    assert {n for n, s in states.items() if s == "CACHED"} == UPSTREAM_OF_TRAINING | {cfg.TRANSFORM}
    assert states[cfg.TRAINER] == states[cfg.PUSHER] == "COMPLETE"
    # The export was read as the same data: every row, every fraud (labels 1.0), the BOM gone from 'Time'.
    splits = again.summary["splits"]
    assert sum(s["rows"] for s in splits.values()) == rows
    assert sum(s["frauds"] for s in splits.values()) == frauds
    assert again.summary["anomalies"] == []
    # The history names the killed run, found in ML Metadata alone (it wrote no record), before the completed one.
    history = json.loads(
        subprocess.run([str(CLI), "history", "--output", str(output), "--json"], capture_output=True, text=True).stdout
    )
    killed, completed = history["rows"]
    assert killed["status"] == "killed" and f"killed or crashed in {cfg.TRAINER}" in killed["outcome"]
    assert completed["status"] == "completed" and completed["serving_now"] is True


def test_two_runs_at_once_on_one_folder_each_push_a_complete_version(tmp_path):
    data, _, _ = _spreadsheet_export(tmp_path / "data" / "export.csv")
    output = tmp_path / "out"
    # Different seeds make different models; the change gates are opened so both are blessed.
    procs = [
        subprocess.Popen(
            [str(CLI), "run", "--data", str(data), "--output", str(output), "--no-report", "--seed", str(seed)]
            + ["--max-pr-auc-drop", "1", "--max-recall-drop", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == status.EXIT_OK, err[-3000:]
    pushed = sorted(
        line.split("pushed to ")[1] for out, _ in results for line in out.splitlines() if "pushed to" in line
    )
    assert len(set(pushed)) == 2, pushed
    versions = sorted(os.listdir(output / "serving"))
    assert [os.path.join(output, "serving", v) for v in versions] == pushed
    for version in versions:
        folder = output / "serving" / version
        assert (folder / "saved_model.pb").is_file() and (folder / contract.OPERATING_THRESHOLD).is_file()
        assert json.loads((folder / contract.OPERATING_THRESHOLD).read_text())["threshold"] > 0
