"""A real PostgreSQL server for a test: initdb into a temporary folder, postgres on a free loopback port, stopped and
removed afterwards. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (Debian's package
makes it) through runuser; a test without PostgreSQL's binaries skips, saying so (fails under
FRAUD_PIPELINE_REQUIRE_POSTGRES, which .ci/run sets after installing them)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

USER = "fraud"
# initdb and the server's start, waited for: a wide margin over what they take alone, for a machine busy with the
# rest of the suite.
START_SECONDS = 120


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as url:` a postgresql:// URL of a fresh cluster (trust authentication, loopback)."""

    def __init__(self):
        self.initdb, self.postgres = _binary("initdb"), _binary("postgres")
        if not (self.initdb and self.postgres):
            why = "PostgreSQL's initdb and postgres are not installed (Debian: apt install postgresql-15)"
            if os.environ.get("FRAUD_PIPELINE_REQUIRE_POSTGRES"):
                pytest.fail(f"{why}; FRAUD_PIPELINE_REQUIRE_POSTGRES is set")
            pytest.skip(why)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.process = None
        self.folder = None

    def __enter__(self) -> str:
        self.folder = tempfile.mkdtemp(prefix="fraud-pg-")
        data = os.path.join(self.folder, "data")
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(
            [*self.as_user, self.initdb, "-D", data, "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                *self.as_user,
                self.postgres,
                "-D",
                data,
                "-p",
                str(self.port),
                "-k",
                self.folder,
                "-h",
                "127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.folder, "server.log"), "w"),
        )
        url = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        import psycopg

        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                psycopg.connect(url, connect_timeout=5).close()
                return url
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = Path(self.folder, "server.log").read_text()[-2000:]
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"PostgreSQL did not start: {log}") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a smart shutdown: sessions end, the server stops
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
