"""Faults outside the data, without running the pipeline: no traceback reaches the terminal from any command (an
injected error is told in one sentence, its traceback goes to the log), storage and metadata faults are named
before anything runs (exit 7), a full disk and a broken store are recognised through the libraries' wrappings,
and `predict` checks --to and passes over an incomplete newest version."""

import errno
import os
import shutil
import sqlite3

import pytest

from components.lib import serving
from pipeline import cli
from pipeline.definition import faults, status
from tests.support import FIXTURE


def _commands():
    """Every subcommand `fraud-pipeline` has: a command added later is covered without editing this test."""
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    return sub.choices


def _argv(name, command, tmp_path):
    """The command with its required arguments filled in, and its output folder (if it has one) in tmp_path."""
    argv = [name]
    # A required choice between flags first (a positional that takes the rest of the line comes last).
    for group in command._mutually_exclusive_groups:
        if group.required:
            first = group._group_actions[0]
            argv += [first.option_strings[0]] + ([] if first.nargs == 0 else ["1"])
    for action in command._actions:
        if not action.option_strings and action.dest not in ("help",):
            argv.append(str(FIXTURE))
        elif action.required:
            argv += [action.option_strings[0], _value(action, tmp_path)]
    flags = {s for a in command._actions for s in a.option_strings}
    for flag in ("--output", "--root"):
        if flag in flags and flag not in argv and not (name in ("compile",) and flag == "--output"):
            argv += [flag, str(tmp_path / "out")]
    return argv


def _value(action, tmp_path) -> str:
    if action.choices:
        return str(action.choices[0])
    if action.type in (int, float):
        return "2"
    return str(tmp_path / "out") if action.dest in ("output", "root") else str(FIXTURE)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_an_unexpected_error_in_any_command_is_one_sentence_and_its_traceback_goes_to_the_log(
    name, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    built = cli.parser()

    def broken(args):
        raise RuntimeError(f"injected fault in {args.command}\nsecond line of the message")

    sub = next(a for a in built._actions if a.dest == "command")
    sub.choices[name].set_defaults(handler=broken)
    monkeypatch.setattr(cli, "parser", lambda: built)

    code = cli.main(_argv(name, sub.choices[name], tmp_path))

    err = capsys.readouterr().err
    assert code == status.EXIT_FAILED
    assert "Traceback" not in err and "second line" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fraud-pipeline: {name} failed: RuntimeError: injected fault in {name}")
    log = lines[0].rsplit("the full traceback is in ", 1)[1].rstrip(")")
    assert os.path.isfile(log)
    text = open(log).read()
    assert (
        "Traceback (most recent call last)" in text and f"injected fault in {name}" in text and "def broken" not in text
    )
    assert "in broken" in text  # the frame that raised is in the log
    # A command with an output folder logs into it; compile, submit and simulate into a file of their own.
    if name in ("compile", "submit", "simulate"):
        # This user's private log folder (mode 0700), never a shared path under /tmp.
        assert log.startswith(str(tmp_path / "state" / "fraud-pipeline" / "logs" / f"{name}-"))
        assert os.stat(tmp_path / "state" / "fraud-pipeline" / "logs").st_mode & 0o777 == 0o700
    else:
        assert log == str(tmp_path / "out" / "pipeline.log")


def test_an_unexpected_no_space_error_anywhere_is_exit_7_and_says_so(tmp_path, monkeypatch, capsys):
    built = cli.parser()

    def full(args):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))
        except OSError as e:
            raise RuntimeError("tensorflow.python.framework.errors_impl.ResourceExhaustedError: write failed") from e

    sub = next(a for a in built._actions if a.dest == "command")
    sub.choices["report"].set_defaults(handler=full)
    monkeypatch.setattr(cli, "parser", lambda: built)

    assert cli.main(["report", "--output", str(tmp_path / "out")]) == status.EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert "no space left on the disk of" in err and "Traceback" not in err and "run the same command again" in err


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (RuntimeError("ResourceExhaustedError: /out/x; No space left on device"), True),
        (RuntimeError("Error when executing query: database or disk is full"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.ENOENT, "No such file or directory"), False),
        (RuntimeError("ResourceExhaustedError: OOM when allocating tensor"), False),
    ],
)
def test_no_space_is_recognised_through_the_libraries_wrappings(error, expected):
    assert faults.no_space(error) is expected
    wrapped = RuntimeError("run failed in Transform")
    wrapped.__cause__ = error
    assert faults.no_space(wrapped) is expected


def test_a_read_only_or_unwritable_output_folder_is_named_before_anything_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()

    def refuse(self, data):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(faults.Path, "write_bytes", refuse)
    assert cli.main(["run", "--data", str(FIXTURE), "--output", str(out)]) == status.EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"fraud-pipeline: the output folder {out} is on a read-only file system: give a folder on a writable disk"
    )
    assert list(out.iterdir()) == []  # not even a log

    def forbid(self, data):
        raise OSError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(faults.Path, "write_bytes", forbid)
    assert cli.main(["predict", "--data", str(FIXTURE), "--output", str(out), "--to", str(tmp_path / "s.csv")]) == 7
    assert "cannot be written by this user" in capsys.readouterr().err


def _store(path):
    """A real SQLite file of a few pages, as ML Metadata's is."""
    with sqlite3.connect(path) as db:
        db.execute("create table artifact (id integer primary key, uri text)")
        db.executemany(
            "insert into artifact (uri) values (?)", [(f"/out/tfx/Trainer/model/{i}" * 8,) for i in range(2000)]
        )
    return path


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "damaged inside"])
def test_a_metadata_store_that_is_not_a_database_is_named_and_nothing_is_touched(damage, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "serving" / "1").mkdir(parents=True)
    (out / "tfx" / "Trainer" / "model" / "7").mkdir(parents=True)
    (out / "tfx" / "Trainer" / "model" / "7" / "saved_model.pb").write_bytes(b"x")
    store = out / "metadata.sqlite"
    if damage == "overwritten":
        store.write_bytes(b'{"not": "a database"}\n' * 50)
    elif damage == "truncated":
        store.write_bytes(b"")
    else:  # the header is intact, pages after it are not
        _store(store)
        with open(store, "r+b") as f:
            f.seek(4096 + 100)
            f.write(b"\xff" * 20000)
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*")}
    content = store.read_bytes()

    assert cli.main(["run", "--data", str(FIXTURE), "--output", str(out)]) == status.EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert f"{store} is not an SQLite database any more" in err
    assert f"mv {store} {store}.broken; mv {out / 'tfx'} {out / 'tfx'}.broken" in err
    assert "serving folder stays as it is" in err
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*")} == before
    assert store.read_bytes() == content


def test_artifacts_left_without_their_store_are_named_before_a_new_store_writes_over_them(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "tfx" / "ImportSchemaGen" / "schema" / "2").mkdir(parents=True)
    (out / "tfx" / "ImportSchemaGen" / "schema" / "2" / "schema.pbtxt").write_text("feature {}")

    assert cli.main(["run", "--data", str(FIXTURE), "--output", str(out)]) == status.EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert f"{out / 'tfx'} holds the artifacts of earlier runs" in err and f"mv {out / 'tfx'} {out / 'tfx'}.old" in err
    assert not (out / "metadata.sqlite").exists()
    # Empty folders alone (a run stopped before any artifact) are no reason to refuse.
    (tmp_path / "empty" / "Trainer").mkdir(parents=True)
    faults.check_metadata(str(tmp_path / "none.sqlite"), str(tmp_path / "empty"))


def test_a_sound_store_passes_the_check_even_while_another_run_holds_it(tmp_path):
    path = _store(tmp_path / "metadata.sqlite")
    faults.check_metadata(str(path), str(tmp_path / "tfx"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("begin exclusive")
    try:
        faults.check_metadata(str(path), str(tmp_path / "tfx"))
    finally:
        other.execute("rollback")
        other.close()


def test_a_store_broken_inside_is_recognised_from_the_error_it_raises():
    error = RuntimeError("Error when executing query: database disk image is malformed query: SELECT ...")
    assert faults.broken_store(error)
    assert not faults.broken_store(RuntimeError("Error when executing query: no such table"))


def test_predict_to_a_folder_that_does_not_exist_is_a_usage_error_before_scoring(tmp_path, capsys):
    code = cli.main(
        ["predict", "--data", str(FIXTURE), "--output", str(tmp_path), "--to", str(tmp_path / "no" / "s.csv")]
    )
    assert code == status.EXIT_USAGE
    assert f"the folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "scoring").exists()


def test_predict_passes_over_an_incomplete_newest_version_and_names_it(tmp_path):
    from pipeline.scoring import predict

    base = tmp_path / "serving"
    for version in (1, 2):
        (base / str(version) / "variables").mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"x")
        (base / str(version) / "variables" / "variables.index").write_bytes(b"x")
    (base / "3" / "variables").mkdir(parents=True)  # a copy still in progress: no saved_model.pb yet
    warned = []

    assert predict.newest_model(str(base), warned.append) == base / "2"
    assert len(warned) == 1 and f"{base / '3'} is not a complete model (yet)" in warned[0] and "version 2" in warned[0]
    shutil.rmtree(base / "3")
    assert predict.newest_model(str(base), warned.append) == base / "2" and len(warned) == 1
    assert serving.complete_versions(str(base)) == [1, 2]


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    built = cli.parser()

    def interrupted(args):
        raise KeyboardInterrupt

    sub = next(a for a in built._actions if a.dest == "command")
    sub.choices["run"].set_defaults(handler=interrupted)
    monkeypatch.setattr(cli, "parser", lambda: built)
    assert cli.main(["run", "--output", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "fraud-pipeline: run interrupted\n"
