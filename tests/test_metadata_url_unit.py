"""Where a command's ML Metadata lives (pipeline/definition/metadata.py): the URL of a shared store read and
refused, the password never in it, the connection MLMD gets, and a run id that says where it ran."""

import pytest

from pipeline.cli import main
from pipeline.definition import metadata
from pipeline.definition import status as st


def test_a_shared_store_url_is_read_and_a_bad_one_refused():
    assert metadata.parse("postgresql://fraud@db.example.com/mlmd") == metadata.Server(
        "db.example.com", 5432, "fraud", "mlmd"
    )
    assert str(metadata.parse("postgres://fraud@h:6543/d")) == "postgresql://fraud@h:6543/d"
    for url, said in [
        ("mysql://u@h/d", "must be a postgresql://"),
        ("postgresql://u:secret@h/d", "a password does not go in the URL"),
        ("postgresql://h/d", "needs a user"),
        ("postgresql://u@h", "needs a user, a host and a database"),
        ("postgresql://u@h:port/d", "the port is not a number"),
    ]:
        with pytest.raises(metadata.MetadataUrlError, match=said) as raised:
            metadata.parse(url)
        assert "secret" not in str(raised.value)


def test_the_store_is_the_folders_file_unless_the_environment_names_one(monkeypatch):
    monkeypatch.delenv(metadata.ENV_URL, raising=False)
    assert metadata.location("/o/metadata.sqlite") == "/o/metadata.sqlite"
    assert metadata.run_suffix("/o/metadata.sqlite") == ""
    monkeypatch.setenv(metadata.ENV_URL, "postgresql://fraud@db:5432/mlmd")
    where = metadata.location("/o/metadata.sqlite")
    assert where == "postgresql://fraud@db:5432/mlmd" and metadata.is_server(where) and metadata.exists(where)
    suffix = metadata.run_suffix(where)
    assert suffix.startswith("+") and metadata.ran_on("2026-12-07T09:45:31.158979" + suffix)
    assert metadata.ran_on("2026-12-07T09:45:31.158979") is None


def test_the_connection_carries_the_password_only_when_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(metadata.ENV_PASSWORD, raising=False)
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv(metadata.ENV_PASSWORD_FILE, str(secret))
    config = metadata.connection_config("postgresql://fraud@db:5433/mlmd")
    pg = config.postgresql
    assert (pg.host, pg.port, pg.user, pg.dbname, pg.password) == ("db", "5433", "fraud", "mlmd", "from-a-file")
    assert pg.skip_db_creation  # created by check_server, under its lock
    assert not metadata.connection_config("postgresql://fraud@db:5433/mlmd", with_password=False).postgresql.password
    monkeypatch.setenv(metadata.ENV_PASSWORD, "from-the-environment")
    assert metadata.connection_config("postgresql://fraud@db/mlmd").postgresql.password == "from-the-environment"
    sqlite = metadata.connection_config("/o/metadata.sqlite", create=False)
    assert sqlite.sqlite.filename_uri == "/o/metadata.sqlite" and not sqlite.HasField("postgresql")


def test_the_flag_refuses_a_password_in_the_url_before_anything_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(metadata.ENV_URL, raising=False)
    code = main(["history", "--output", str(tmp_path), "--metadata", "postgresql://u:hunter2@h/d"])
    err = capsys.readouterr().err
    assert code == st.EXIT_USAGE and "a password does not go in the URL" in err and "hunter2" not in err
