"""Faults a team meets: a run killed mid-way, two runs at once on one folder, an output folder that turns read-only,
fills up or whose ML Metadata store breaks (each told in one sentence, exit 7, and repaired by the next run); and data
that only looks different (byte order mark, CRLF line ends, quoted and reordered columns, labels written as 0.0/1.0)
is the same data."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import contract
from components.lib import serving
from pipeline.definition import config as cfg
from pipeline.definition import status
from tests.support import CLI, FIXTURE, UPSTREAM_OF_TRAINING, read_csv_rows, run_cli, snapshot

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
        # Killed once the Trainer's execution has its output folder: it is registered and running.
        trainer_outputs = output / "tfx" / cfg.TRAINER
        deadline = time.monotonic() + 120
        while not trainer_outputs.is_dir() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert trainer_outputs.is_dir(), "the Trainer never started"
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


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mount whose size and read-only flag the test changes (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root: the storage faults are proven only where the tests run as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)

    try:
        yield mount, remount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _used_kib(mount) -> int:
    stat = os.statvfs(mount)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize // 1024


def _only_complete_versions(output) -> list[int]:
    """The versions under serving/, after checking each is one TF Serving can load (no half-written folder)."""
    base = str(output / "serving")
    assert serving.versions(base) == serving.complete_versions(base)
    assert not [n for n in os.listdir(base) if not n.isdigit()], os.listdir(base)  # no staging copy left
    return serving.versions(base)


def _message(run) -> str:
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(lines) == 1, run.stderr[-3000:]
    return lines[0]


def test_a_read_only_full_or_broken_output_folder_is_one_sentence_and_the_next_run_repairs_it(time_run, small_disk):
    """On the fixture, in a folder that holds the time run's pushed model and history (a copy on a tmpfs):
    read-only, then a store damaged inside, then a disk that fills up in the middle of the run; after each, the
    command the message advises completes, with the time run's metrics and only complete versions serving."""
    mount, remount = small_disk
    output = mount / "out"
    shutil.copytree(time_run.output, output, symlinks=True)
    served = _only_complete_versions(output)
    assert served and snapshot(output / "serving") == {k: v for k, v in snapshot(time_run.output / "serving").items()}
    args = ("--data", str(FIXTURE), "--no-report")

    # 1. Read-only: refused before anything runs, then the same command completes once the disk is writable.
    remount("ro")
    refused = run_cli(output, *args)
    remount("rw")
    assert refused.returncode == status.EXIT_ENVIRONMENT
    assert _message(refused) == (
        f"fraud-pipeline: the output folder {output} is on a read-only file system: give a folder on a writable disk"
    )
    assert "running" not in refused.stderr
    again = run_cli(output, *args)
    assert again.returncode == status.EXIT_OK, again.stderr[-3000:]
    assert again.summary["evaluation"]["overall"] == time_run.summary["evaluation"]["overall"]
    assert _only_complete_versions(output) == served

    # 2. The store damaged inside (its header intact): named, with what to do; nothing in the folder touched.
    store = output / "metadata.sqlite"
    with open(store, "r+b") as f:
        f.seek(4096 + 100)
        f.write(b"\xff" * 20000)
    before, content = snapshot(output), store.read_bytes()
    broken = run_cli(output, *args)
    assert broken.returncode == status.EXIT_ENVIRONMENT
    message = _message(broken)
    assert f"{store} is not an SQLite database any more" in message and "running" not in broken.stderr
    assert snapshot(output) == before and store.read_bytes() == content
    # Do what it says.
    advice = re.search(r"\((mv [^)]+)\)", message).group(1)
    for step in advice.split("; "):
        subprocess.run(step.split(), check=True)

    # 3. The disk fills up in the middle of the (fresh) run: said plainly, with the component; serving untouched.
    remount(f"size={_used_kib(mount) + 1024}k")
    full = run_cli(output, *args)
    assert full.returncode == status.EXIT_ENVIRONMENT, full.stderr[-3000:]
    message = _message(full)
    failed = next(n for n, c in full.summary["components"].items() if c["state"] not in ("COMPLETE", "CACHED"))
    assert message.startswith(f"fraud-pipeline: no space left on the disk of {output} while {failed} ran")
    assert "run the same command again" in message
    assert _only_complete_versions(output) == served
    finished = {n for n, c in full.summary["components"].items() if c["state"] == "COMPLETE"}
    assert finished and failed not in finished

    # Space freed: the same command completes; what finished comes from the cache, what failed runs again.
    remount("size=64m")
    done = run_cli(output, *args)
    assert done.returncode == status.EXIT_OK, done.stderr[-3000:]
    states = {n: c["state"] for n, c in done.summary["components"].items()}
    assert {n for n in finished if states[n] == "CACHED"} == finished - {cfg.SERVING_BASELINE}
    assert states[failed] == "COMPLETE"
    assert done.summary["evaluation"]["overall"] == time_run.summary["evaluation"]["overall"]
    assert done.summary["already_serving"] is True
    assert _only_complete_versions(output) == served
