"""Hostile and careless input (docs/faults.md, "Hostile input"): files that crashed, hung or filled memory, outputs
that destroyed inputs, names taken as patterns, ids that became paths, text that became script or terminal codes,
a rollback and a push at once. Each test fails on the code before these guards."""

import gzip
import html.parser
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import contract
from components.lib import csv_contract, serving
from components.lib.rejection import DataRejectedError
from components.pusher import model_card
from pipeline import cli
from pipeline.cli.data import data_files, data_input, split_data_path
from pipeline.cli.flags import UsageError
from pipeline.definition import faults
from pipeline.definition import status as st
from pipeline.report import history_page
from pipeline.scoring import destination, rows

ROOT = Path(__file__).parent.parent
HEADER = ",".join(contract.RAW_COLUMNS)
ROW = ",".join(["1"] + ["0.5"] * 29 + ["0"])


def _csv(path: Path, body: str = "", rows_: int = 3) -> str:
    path.write_text(HEADER + "\n" + (ROW + "\n") * rows_ + body)
    return str(path)


def _bounded_run(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Python code in a fresh process (a crash or a hang fails the test, not the suite); prints its peak RSS in MB
    (VmHWM: this process's own peak, where ru_maxrss would count the test process's memory at the fork too)."""
    script = code + (
        "\nprint('rss', next(int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


# Row 1: a line of 300,000 commas segfaulted predict's reader (Arrow) and ExampleGen's; row 2: a small gzip file of
# one 100 MB line hung it; row 3: a header without a newline was read whole into memory.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "words"),
    [
        ("open('f.csv', 'w').write(HEADER + '\\n' + (ROW + '\\n') * 2000 + ',' * 300000 + '\\n')",
         "line 2002 is longer"),
        ("gzip.open('f.csv.gz', 'wb').write((HEADER + '\\n' + ROW + '\\n').encode() + b'1' * (100 << 20))",
         "line 3 is longer"),
        ("gzip.open('f.csv.gz', 'wb').write(b'A' * (200 << 20))", "the header (line 1) is longer than 32,768 bytes"),
    ],
)  # fmt: skip
def test_a_long_line_is_refused_as_data_by_every_reader_with_memory_bounded(make, words, tmp_path):
    code = f"""
import gzip, glob
from components.lib import csv_contract
from components.example_gen import records
from components.lib.rejection import DataRejectedError
from pipeline.scoring import rows
HEADER, ROW = {HEADER!r}, {ROW!r}
{make}
path = glob.glob('f.csv*')[0]
readers = {{
    'predict': lambda: list(rows.batches([path], rows.Rejects(None))),
    'example_gen fast': lambda: list(records.fast_blocks(path, csv_contract.read_header(path))),
    'example_gen careful': lambda: list(csv_contract.checked_rows(path, 31, 30)),
}}
for name, read in readers.items():
    try:
        read()
        print(name, 'read it')
    except DataRejectedError as e:
        print(name, 'refused:', e)
"""
    done = _bounded_run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for reader in ("predict", "example_gen fast", "example_gen careful"):
        assert any(line.startswith(f"{reader} refused:") and words in line for line in lines), done.stdout
    # TensorFlow's import is most of it; the 100 and 200 MB of text never are in memory.
    assert int(lines[-1].split()[1]) < 1200, lines[-1]


def test_header_limits_name_the_first_columns_and_count_the_rest(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + "," + ",".join(f"x{i}" for i in range(4000)) + "\n" + ROW + "\n")
    with pytest.raises(DataRejectedError) as refused:
        csv_contract.read_header(str(path))
    message = str(refused.value)
    assert "4,031 columns, more than the 1,000" in message and "and 4,026 more" in message
    assert len(message) < 400  # a header of 100,000 columns made a message of hundreds of KB (docs/faults.md)
    with pytest.raises(DataRejectedError, match="does not know: Merchant, Shop, x0, x1, x2 and 5 more"):
        csv_contract.scoring_columns("f.csv", [*contract.RAW_COLUMNS, "Merchant", "Shop"] + [f"x{i}" for i in range(8)])


def test_a_gzip_bomb_of_valid_rows_is_refused_past_the_ratio(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write((HEADER + "\n").encode())
        for _ in range(40):
            f.write(((ROW + "\n") * 10_000).encode())
    with pytest.raises(DataRejectedError, match="refused as a gzip bomb"):
        list(rows.batches([str(path)], rows.Rejects(None)))
    with pytest.raises(DataRejectedError, match="refused as a gzip bomb"):
        csv_contract.check_training_files([str(path)])
    # The same rows at the ratio of real data are read.
    plain = tmp_path / "ok.csv.gz"
    plain.write_bytes(gzip.compress(_csv_text(2000).encode()))
    assert sum(len(b) for b in rows.batches([str(plain)], rows.Rejects(None))) == 2000


def _csv_text(n: int) -> str:
    import random

    rng = random.Random(0)
    lines = [",".join([str(i)] + [f"{rng.gauss(0, 1):.6f}" for _ in range(29)] + ["0"]) for i in range(n)]
    return HEADER + "\n" + "\n".join(lines) + "\n"


def test_what_pythons_csv_module_cannot_read_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes((HEADER + "\n" + ROW + "\n").encode() + b"1,\x00\n")
    with pytest.raises(DataRejectedError, match=r"line 3: .*not CSV the contract reads"):
        list(csv_contract.careful_rows(str(path)))


# Item 5: what can be known from the first bytes is refused before anything is imported.
@pytest.mark.parametrize(
    ("write", "words"),
    [
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text(HEADER + "\n"), "the input holds no rows (a header alone?)"),
        (lambda p: p.write_text(HEADER.replace(",V3,", ",") + "\n1\n"), "line 1 (header): lacks V3"),
        (lambda p: p.write_text(HEADER + ",Merchant\n1\n"), "does not know: Merchant"),
        (lambda p: p.write_bytes(gzip.compress(_csv_text(500).encode())[:3000]), "is not a complete gzip file"),
    ],
)
def test_run_refuses_what_the_first_bytes_show_before_importing_the_stack(write, words, tmp_path):
    name = "in.csv.gz" if "gzip" in words else "in.csv"
    write(tmp_path / name)
    code = f"""
import sys
from pipeline import cli
code = cli.main(['run', '--data', {str(tmp_path / name)!r}, '--output', {str(tmp_path / "out")!r}])
print('exit', code, 'tensorflow' in sys.modules, 'tfx' in sys.modules, 'apache_beam' in sys.modules)
"""
    done = _bounded_run(code, tmp_path)
    assert done.stdout.splitlines()[0] == "exit 3 False False False", done.stdout + done.stderr[-2000:]
    assert f"fraud-pipeline: data rejected: {tmp_path / name}" in done.stderr and words in done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == st.DATA_REJECTED and words in summary["message"] and summary["run_id"] is None
    assert not (tmp_path / "out" / "metadata.sqlite").exists()


def test_example_gen_checks_with_the_same_function_and_words(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "\n")
    with pytest.raises(DataRejectedError, match="the input holds no rows"):
        csv_contract.check_training_files([str(path)])
    source = (ROOT / "components" / "example_gen" / "executor.py").read_text()
    assert "csv_contract.check_training_files(" in source


# Rows 4-6: outputs that destroy inputs or each other, two writers of one file.
def test_an_output_that_is_an_input_or_another_output_is_refused_before_anything_is_written(tmp_path):
    data = Path(_csv(tmp_path / "victim.csv"))
    before = data.read_bytes()
    os.link(data, tmp_path / "hard.csv")
    os.symlink(data, tmp_path / "soft.csv")
    (tmp_path / "folder").mkdir()
    inputs = {"--data": [str(data)]}
    for to in (str(data), str(tmp_path / "." / "victim.csv"), str(tmp_path / "hard.csv"), str(tmp_path / "soft.csv")):
        with pytest.raises(destination.PathClashError, match="is the file --data reads"):
            destination.check_paths(inputs, {"--to": str(tmp_path / "s.csv"), "--rejects": to})
    with pytest.raises(destination.PathClashError, match="name the same file"):
        destination.check_paths(inputs, {"--to": str(tmp_path / "s.csv"), "--rejects": str(tmp_path / "./s.csv")})
    with pytest.raises(destination.PathClashError, match="inside the folder of --data"):
        destination.check_paths({"--data": [str(tmp_path / "folder")]}, {"--to": str(tmp_path / "folder" / "s.csv")})
    assert data.read_bytes() == before


def test_predict_refuses_its_input_as_output_with_exit_2_and_leaves_it_whole(tmp_path, capsys):
    data = Path(_csv(tmp_path / "victim.csv"))
    before = data.read_bytes()
    for argv in (["--to", str(data)], ["--to", str(tmp_path / "s.csv"), "--rejects", str(data)]):
        code = cli.main(["predict", "--data", str(data), "--output", str(tmp_path / "out"), *argv])
        assert code == st.EXIT_USAGE
        assert "it would be destroyed" in capsys.readouterr().err
    assert data.read_bytes() == before


def test_two_writers_of_one_destination_one_is_refused_and_nothing_half_written_remains(tmp_path):
    target = tmp_path / "scores.csv"
    (tmp_path / "scores.csv.partial").write_text("someone else's")  # an old-style partial name is not touched
    with destination.writing(str(target)) as (first,):
        assert Path(first).parent == tmp_path and first != str(target) + ".partial"
        with pytest.raises(faults.EnvironmentFaultError, match="another command is writing"):
            with destination.writing(str(target)):
                pass
        Path(first).write_text("complete\n")
    assert target.read_text() == "complete\n"
    assert (tmp_path / "scores.csv.partial").read_text() == "someone else's"
    with pytest.raises(RuntimeError), destination.writing(str(target)) as (partial,):
        Path(partial).write_text("half")
        raise RuntimeError("scoring failed")
    assert target.read_text() == "complete\n" and not Path(partial).exists()
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Row 7: a file given by name is that file.
def test_a_file_name_with_pattern_characters_is_that_file_alone(tmp_path):
    wanted = Path(_csv(tmp_path / "train[1].csv"))
    _csv(tmp_path / "train1.csv")
    _csv(tmp_path / "train*.csv")
    for path in (wanted, tmp_path / "train*.csv"):
        assert data_files(data_input(str(path)), 0) == [str(path)]
    # CsvExampleGen's own glob: the escaped name, and a folder whose name has a bracket.
    from components.example_gen import inputs

    folder = tmp_path / "data[1]"
    folder.mkdir()
    _csv(folder / "a.csv")
    props = {"input_base": str(folder)}
    assert inputs.input_files(props, "*.csv*") == [str(folder / "a.csv")]
    props = {"input_base": str(tmp_path)}
    assert inputs.input_files(props, split_data_path(str(wanted))[1]) == [str(wanted)]


# Row 13: a remote --data whose last part is neither a folder, a CSV name nor a pattern.
def test_a_remote_data_uri_that_is_neither_a_file_nor_a_pattern_is_refused():
    with pytest.raises(UsageError, match="for the folder write gs://bucket/data/"):
        split_data_path("gs://bucket/data")
    assert split_data_path("gs://bucket/data/") == ("gs://bucket/data", "*.csv*")
    assert split_data_path("gs://bucket/data/day.csv.gz") == ("gs://bucket/data", "day.csv.gz")
    assert split_data_path("gs://bucket/data/*.csv") == ("gs://bucket/data", "*.csv")


def test_compile_refuses_such_a_uri_with_exit_2(tmp_path, capsys):
    code = cli.main(["compile", "--target", "kubeflow", "--data", "gs://bucket/data", "--image", "img:1",
                     "--output", str(tmp_path / "p.yaml"), "--pipeline-root", "gs://bucket/root"])  # fmt: skip
    assert code == st.EXIT_USAGE, capsys.readouterr().err
    assert "neither a CSV file name" in capsys.readouterr().err


# Row 8: text from files is escaped on every page.
class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


PROBE = "<img src=x onerror=alert(1)>"


def test_the_history_page_escapes_a_rollback_log_written_by_anyone(tmp_path):
    record = {
        "serving_dir": str(tmp_path / "serving"),
        "serving_now": "1",
        "metadata_error": None,
        "rows": [{"kind": "rollback", "at": PROBE, "by": PROBE, "from": PROBE, "to": PROBE, "archived": [PROBE],
                  "reason": PROBE}],
    }  # fmt: skip
    page = Path(history_page.build(record, str(tmp_path / "page"))).read_text()
    parser = _Tags()
    parser.feed(page)
    assert "img" not in parser.tags and page.count("&lt;img src=x onerror=alert(1)&gt;") == 6


def test_the_model_card_shows_a_hostile_file_name_as_text():
    text = model_card._md(PROBE + "|x\n\x1b[31m")
    # No tag a Markdown viewer would pass through, no table cell broken, no terminal code.
    assert "<" not in text and "\\|" in text and "\x1b" not in text and "\n" not in text
    assert model_card._from_md(text) == PROBE + "|x  [31m"


def test_history_prints_control_characters_escaped(tmp_path, capsys):
    from pipeline.cli import history as history_cli

    history_cli._print("reason: \x1b]0;owned\x07 \x1b[2J done")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07" in out


# Rows 9-10: rollback and push exclude each other; a rollback stopped mid-way is finished, with its record.
def _push(serving_dir: Path, version: int) -> None:
    folder = serving_dir / str(version)
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"m%d" % version)
    (folder / "variables" / "variables.index").write_bytes(b"i")
    serving.write_manifest(str(folder))


def test_a_rollback_waits_for_a_push_in_progress(tmp_path):
    base = tmp_path / "serving"
    for v in (1, 2):
        _push(base, v)
    done = []
    with serving.locked(str(base)):
        worker = threading.Thread(target=lambda: done.append(serving.rollback(str(base), 1, "r", "u", "t")))
        worker.start()
        time.sleep(0.5)
        assert not done and (base / "2").is_dir()  # it waits while the lock is held
        _push(base, 3)  # what a push renames in under the lock
    worker.join(10)
    assert done[0]["archived"] == [2, 3] and done[0]["serving_after"] == 1
    assert serving.serving_now(str(base))[0] == 1


def test_a_rollback_stopped_after_its_first_move_is_finished_by_the_next_with_who_when_and_why(tmp_path):
    base = tmp_path / "serving"
    for v in (1, 2, 3):
        _push(base, v)

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        serving.rollback(str(base), 1, "bad model", "alice", "2026-01-01T00:00:00+00:00", pause=stop)
    assert serving.rollback_log(str(base)) == [] and serving.interrupted_rollback(str(base))["by"] == "alice"
    event = serving.rollback(str(base), 1, "again", "bob", "later")
    assert event["resumed"] and event["by"] == "alice" and event["reason"] == "bad model"
    assert [e["by"] for e in serving.rollback_log(str(base))] == ["alice"]
    assert serving.serving_now(str(base))[0] == 1 and serving.interrupted_rollback(str(base)) is None


# Item 2: pushed versions verify.
def test_a_version_whose_files_changed_after_the_push_is_refused_naming_the_file(tmp_path):
    base = tmp_path / "serving"
    _push(base, 1)
    serving.verify(str(base / "1"))
    (base / "1" / "saved_model.pb").write_bytes(b"evil")
    with pytest.raises(serving.UnverifiedVersionError, match=r"1/saved_model.pb differs from what was pushed"):
        serving.verify(str(base / "1"))
    _push(base, 2)
    (base / "2" / "variables" / "extra").write_bytes(b"x")
    with pytest.raises(serving.UnverifiedVersionError, match="is not in its manifest"):
        serving.verify(str(base / "2"))
    _push(base, 3)
    os.remove(base / "3" / contract.MANIFEST)
    with pytest.raises(serving.UnverifiedVersionError, match="has no manifest"):
        serving.verify(str(base / "3"))
    _push(base, 4)
    with pytest.raises(serving.UnverifiedVersionError):
        serving.rollback(str(base), 3, "r", "u", "t")  # a rollback does not promote it
    assert serving.serving_now(str(base))[0] == 4


def test_the_pusher_writes_the_manifest_before_saved_model_and_syncs(tmp_path, monkeypatch):
    from components.pusher import component as pusher

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"):
        (model / name).write_bytes(os.urandom(64))
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    version, path = pusher.push(str(model), str(tmp_path / "serving"), clock=lambda: 5)
    manifest = json.loads((Path(path) / contract.MANIFEST).read_text())["files"]
    assert set(manifest) == {"saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"}
    serving.verify(path)
    assert any(s.endswith("saved_model.pb") for s in synced) and str(tmp_path / "serving") in synced


# Row 11: a traceback never follows a link planted at its log's name.
def test_a_log_without_an_output_folder_goes_to_a_private_folder_and_follows_no_link(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = faults.log_path("compile", None)
    os.symlink(victim, planted)
    log = faults.record_traceback(RuntimeError("boom"), "compile", None)
    assert victim.read_text() == "precious\n" and log != planted and "boom" in log.read_text()
    assert os.stat(log.parent).st_mode & 0o777 == 0o700


# Row 12: ids and names from files validated before they become paths or numbers.
def test_a_run_id_from_a_file_never_becomes_a_path_outside_the_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"run_id": str(tmp_path / "elsewhere"), "status": "completed"}))
    assert cli.main(["report", "--output", str(out)]) == st.EXIT_USAGE
    assert "is not a run id" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()
    with pytest.raises(ValueError):
        contract.OutputLayout(str(out)).run_dir("../../x")
    assert contract.is_run_id("2026-12-04T18:40:56.176303") and not contract.is_run_id("..")


def test_a_folder_that_str_isdigit_takes_for_a_number_is_not_a_version(tmp_path):
    base = tmp_path / "serving"
    _push(base, 7)
    (base / "²").mkdir()
    assert serving.versions(str(base)) == [7] and serving.stray_names(str(base)) == ["²"]
    assert sorted(["12", "my-model", "9", "2"], key=contract.version_order) == ["2", "9", "12", "my-model"]


def test_rehearse_says_a_spec_is_code():
    assert "A spec is code" in cli.parser()._subparsers._group_actions[0].choices["rehearse"].description


def test_a_push_renames_its_version_only_when_no_rollback_holds_the_folder(tmp_path):
    from components.pusher import component as pusher

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "variables/variables.index"):
        (model / name).write_bytes(b"m")
    base = tmp_path / "serving"
    base.mkdir()
    pushed = []
    with serving.locked(str(base)):
        worker = threading.Thread(target=lambda: pushed.append(pusher.push(str(model), str(base), clock=lambda: 9)))
        worker.start()
        # Wait for the staging copy to be complete (its saved_model.pb written), then the push waits on the lock.
        deadline = time.monotonic() + 60
        while not list(base.glob(f"{pusher.STAGING_PREFIX}*/variables/variables.index")):
            assert time.monotonic() < deadline, "the push never staged its copy"
            time.sleep(0.01)
        worker.join(0.5)
        assert worker.is_alive() and not pushed and serving.versions(str(base)) == []  # staged, not renamed yet
    worker.join(10)
    assert pushed[0][0] == "9" and serving.versions(str(base)) == [9]


def test_example_gens_reader_refuses_a_header_that_names_a_column_twice(tmp_path):
    import apache_beam as beam

    from components.example_gen import records

    path = tmp_path / "twice.csv"
    path.write_text(HEADER + ",V3\n" + ROW + ",1\n")
    with pytest.raises(DataRejectedError, match="names V3 twice"), beam.Pipeline() as pipeline:
        _ = pipeline | records.CsvToTimedRecords([str(path)], careful=False)


def test_verify_names_what_does_not_verify_and_seals_a_version_pushed_before_manifests(tmp_path, capsys):
    base = tmp_path / "out" / "serving"
    _push(base, 1)
    _push(base, 2)
    os.remove(base / "2" / contract.MANIFEST)  # as pushed before manifests
    argv = ["verify", "--output", str(tmp_path / "out")]
    assert cli.main(argv) == st.EXIT_ENVIRONMENT
    assert "2: NOT verified" in capsys.readouterr().out
    assert cli.main([*argv, "--seal", "2"]) == st.EXIT_OK
    assert cli.main([*argv, "--seal", "2"]) == st.EXIT_USAGE  # sealed once, never over a manifest
    (base / "1" / "saved_model.pb").write_bytes(b"changed")
    assert cli.main(argv) == st.EXIT_ENVIRONMENT
    assert "1/saved_model.pb differs" in capsys.readouterr().out


@pytest.mark.slow
def test_blank_lines_by_the_million_cost_predicts_reader_no_memory(tmp_path):
    # Found by the fuzzer: 8 MB of blank lines from 36 KB of gzip took Arrow's reader (keeping blank lines, so that
    # row i is line i + 2) gigabytes before the careful reader skipped them (docs/faults.md).
    code = f"""
import gzip
from pipeline.scoring import rows
gzip.open('blank.csv.gz', 'wb').write(({HEADER!r} + '\\n' + {ROW!r} + '\\n').encode() + b'\\r\\n' * (4 << 20))
print('rows', sum(len(b) for b in rows.batches(['blank.csv.gz'], rows.Rejects(None))))
"""
    done = _bounded_run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "rows 1" and int(lines[-1].split()[1]) < 300, lines


def test_predict_refuses_a_pushed_version_whose_files_changed_with_exit_7(tmp_path, capsys):
    base = tmp_path / "out" / "serving"
    _push(base, 5)
    (base / "5" / "assets.extra").mkdir(exist_ok=True)
    (base / "5" / contract.OPERATING_THRESHOLD).write_text('{"threshold": 0.5}')
    serving.write_manifest(str(base / "5"))
    (base / "5" / "variables" / "variables.index").write_bytes(b"tampered")
    data = _csv(tmp_path / "day.csv")
    code = cli.main(["predict", "--data", data, "--to", str(tmp_path / "s.csv"), "--output", str(tmp_path / "out")])
    assert code == st.EXIT_ENVIRONMENT
    assert "variables/variables.index differs from what was pushed" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_replay_refuses_what_the_first_bytes_show_before_cutting_spans(tmp_path, capsys):
    data = tmp_path / "past.csv"
    data.write_text(HEADER + "\n")
    code = cli.main(["replay", "--data", str(data), "--spans", "2", "--output", str(tmp_path / "out")])
    assert code == st.EXIT_DATA_REJECTED
    assert "the input holds no rows" in capsys.readouterr().err
    assert not (tmp_path / "out" / "spans").exists()


def test_a_torn_last_line_of_the_rollback_log_is_named_and_the_whole_events_kept(tmp_path, capsys):
    """A crash while appending leaves half an event: `history` keeps every whole one, names the torn line, exits 0,
    and the next rollback's event starts a line of its own."""
    from pipeline.cli import main as cli_main

    base = tmp_path / "out" / "serving"
    for v in (1, 2, 3):
        _push(base, v)
    serving.rollback(str(base), 2, "first", "alice", "2026-01-01T00:00:00+00:00")
    log = base / serving.ARCHIVE / serving.ROLLBACK_LOG
    with open(log, "a") as f:
        f.write('{"archived": [2], "at": "2026-01-02T00:00:00+00:00", "by"')  # killed mid-append
    events, problems = serving.read_rollback_log(str(base))
    assert [e["by"] for e in events] == ["alice"]
    assert len(problems) == 1 and "line 2 is not a whole rollback event" in problems[0] and str(log) in problems[0]
    assert cli_main(["history", "--output", str(tmp_path / "out")]) == 0
    assert "line 2 is not a whole rollback event" in capsys.readouterr().err
    serving.rollback(str(base), 1, "second", "bob", "2026-01-03T00:00:00+00:00")
    events, problems = serving.read_rollback_log(str(base))
    assert [e["by"] for e in events] == ["alice", "bob"] and len(problems) == 1
