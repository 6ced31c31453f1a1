"""A real PostgreSQL server for a test: initdb into a temporary folder, postgres on a free loopback port, stopped and
removed afterwards. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (Debian's package
makes it) through runuser; a test without PostgreSQL's binaries skips, saying so (fails under
FRAUD_PIPELINE_REQUIRE_POSTGRES, which .ci/run sets after installing them)."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests import waits

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
    """`with PostgresServer() as url:` a postgresql:// URL of a fresh cluster on loopback: trust authentication, or
    with a password, the user's password required over TCP (scram-sha-256). The URL never holds the password."""

    def __init__(self, password: str | None = None):
        self.password = password
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
        auth = ["--auth=trust"]
        if self.password is not None:
            secret = os.path.join(self.folder, "password")
            Path(secret).write_text(self.password + "\n")
            if self.as_user:
                shutil.chown(secret, "postgres", "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        subprocess.run(
            [*self.as_user, self.initdb, "-D", data, "-U", USER, *auth, "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
        self.data = data
        self.port = _free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        self.start()
        return self.url

    def start(self) -> None:
        """Starts the server on its data and port (again, after stop) and waits until it answers."""
        self.process = subprocess.Popen(
            [
                *self.as_user,
                self.postgres,
                "-D",
                self.data,
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
            stderr=open(os.path.join(self.folder, "server.log"), "a"),
        )
        import psycopg

        started = time.monotonic()
        deadline = started + START_SECONDS
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=5, password=self.password).close()
                waits.waited(START_SECONDS, time.monotonic() - started)
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    waits.waited(START_SECONDS, time.monotonic() - started, expired=True)
                    log = Path(self.folder, "server.log").read_text()[-2000:]
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"PostgreSQL did not start: {log}") from None
                time.sleep(0.2)

    def stop(self, fast: bool = True) -> None:
        """Stops the server: fast (SIGINT) ends the open sessions at once, as a crash of the server looks to them.
        The signal goes to the postmaster itself (its pid file's first line): runuser, its parent here, does not pass
        every signal on."""
        if self.process is not None and self.process.poll() is None:
            try:
                postmaster = int(Path(self.data, "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, signal.SIGINT if fast else signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                self.process.send_signal(signal.SIGINT if fast else signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop(fast=False)  # a smart shutdown: sessions end, the server stops
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
