"""Where a local run's ML Metadata lives, and the one place that turns it into MLMD's connection: the output folder's
SQLite file (OUTPUT/metadata.sqlite, the default), or a PostgreSQL database a team shares.

The store is named once, by `--metadata postgresql://USER@HOST[:PORT]/DB` on a command or by FRAUD_PIPELINE_METADATA
in the environment (the flag sets the variable, so every step of the command and the processes it starts read the
same store). The password never travels in the URL (a URL that holds one is refused): it comes from
FRAUD_PIPELINE_METADATA_PASSWORD, or from the file FRAUD_PIPELINE_METADATA_PASSWORD_FILE names, or from libpq's own
~/.pgpass. Compiled specs keep the orchestrator's store (Kubeflow's, Vertex AI's): nothing here reaches them.
"""

import dataclasses
import os
import socket
import urllib.parse

from compat import mlmd as compat_mlmd

ENV_URL = "FRAUD_PIPELINE_METADATA"
ENV_PASSWORD = "FRAUD_PIPELINE_METADATA_PASSWORD"
ENV_PASSWORD_FILE = "FRAUD_PIPELINE_METADATA_PASSWORD_FILE"
SCHEMES = ("postgresql", "postgres")
DEFAULT_PORT = 5432
# How long a connection attempt waits for the server (libpq's connect_timeout).
CONNECT_SECONDS = 10


class MetadataUrlError(ValueError):
    """A --metadata value that is not a store's URL (a usage error: exit 2)."""


@dataclasses.dataclass(frozen=True)
class Server:
    """A PostgreSQL database holding ML Metadata."""

    host: str
    port: int
    user: str
    dbname: str

    def __str__(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def parse(url: str) -> Server:
    """A postgresql:// URL as a Server.

    Raises:
      MetadataUrlError: another scheme, no user, host or database, or a password in it.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise MetadataUrlError(f"--metadata must be a postgresql://USER@HOST:PORT/DB URL, got {url.split('@')[-1]!r}")
    if parts.password is not None:
        raise MetadataUrlError(
            f"--metadata {parts.scheme}://...@{parts.hostname}: a password does not go in the URL (it would be in the "
            f"shell's history and the run's records); set {ENV_PASSWORD} or {ENV_PASSWORD_FILE}"
        )
    dbname = parts.path.lstrip("/")
    if not (parts.username and parts.hostname and dbname):
        raise MetadataUrlError(f"--metadata {url}: needs a user, a host and a database (postgresql://USER@HOST/DB)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise MetadataUrlError(f"--metadata {url}: the port is not a number") from None
    return Server(parts.hostname, port, urllib.parse.unquote(parts.username), dbname)


def shared() -> Server | None:
    """The team's store the environment names (FRAUD_PIPELINE_METADATA), or None: each output folder's own."""
    url = os.environ.get(ENV_URL, "").strip()
    return parse(url) if url else None


def location(sqlite_path: str) -> str:
    """The store a command uses: the shared one's URL (without a password), else the output folder's SQLite file."""
    server = shared()
    return str(server) if server else sqlite_path


def is_server(where: str) -> bool:
    return where.split("://", 1)[0] in SCHEMES


def run_suffix(where: str) -> str:
    """What a run id carries after its time in a shared store: '+' the machine's name and the process id (two
    runs started in the same microsecond on two machines stay two runs); nothing in an output folder's own."""
    if not is_server(where):
        return ""
    host = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in socket.gethostname())[:40]
    return f"+{host or 'host'}-{os.getpid()}"


def ran_on(run_id: str) -> str | None:
    """The machine a run id of a shared store names (None for an output folder's own run)."""
    if "+" not in run_id:
        return None
    return run_id.rsplit("+", 1)[1].rsplit("-", 1)[0] or None


def password() -> str | None:
    """The shared store's password, from the environment or the file it names (None: libpq's ~/.pgpass or none)."""
    if os.environ.get(ENV_PASSWORD):
        return os.environ[ENV_PASSWORD]
    path = os.environ.get(ENV_PASSWORD_FILE)
    if path:
        with open(path) as f:
            return f.read().strip()
    return None


def connection_config(where: str, create: bool = True, with_password: bool = True):
    """MLMD's ConnectionConfig of a store: a location() (the SQLite file, or the server's URL). Without the password
    (with_password False: the pipeline definition reads no environment), libpq takes it from PGPASSWORD, which
    export_password sets for the command's process."""
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    if not is_server(where):
        config.sqlite.filename_uri = where
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            if create
            else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
        )
        return config
    server = parse(where)
    # MLMD 1.16 cannot store a string with a backslash in PostgreSQL, and TFX's cache trusts SQLite's order:
    # compat.mlmd mends both; and keeps one connection a store for TFX's handles.
    compat_mlmd.install()
    compat_mlmd.share_connections()
    config.postgresql.host = server.host
    config.postgresql.port = str(server.port)
    config.postgresql.user = server.user
    config.postgresql.dbname = server.dbname
    # check_server creates the database (ML Metadata's own creation races with another command's).
    config.postgresql.skip_db_creation = True
    secret = password() if with_password else None
    if secret is not None:
        config.postgresql.password = secret
    return config


def export_password() -> None:
    """The shared store's password where libpq finds it (PGPASSWORD) for the connections TFX opens in this process
    from the pipeline's ConnectionConfig, which carries none."""
    secret = password()
    if secret is not None:
        os.environ["PGPASSWORD"] = secret


def exists(where: str) -> bool:
    """Can the store hold runs yet (a server always can; a file once it is created)?"""
    return is_server(where) or os.path.exists(where)


def _connect(server: Server, dbname: str | None = None, **options):
    import psycopg

    secret = password()
    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        dbname=dbname or server.dbname,
        connect_timeout=CONNECT_SECONDS,
        **({"password": secret} if secret is not None else {}),
        **options,
    )


def _failure(server: Server, error) -> ConnectionError:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = " ".join(lines) if lines else type(error).__name__
    return ConnectionError(f"the ML Metadata store {server} cannot be used: {_sentence(said)}")


def check_server(where: str) -> None:
    """Readies a shared store before anything runs, and refuses one that cannot be used: the server not answering,
    the user or password refused, a store of an older (or newer) ML Metadata schema. A database that does not exist
    is created; ML Metadata's tables are created in it by the first command, the others waiting for it (two
    commands starting at once against a new database would otherwise both create it, and one fail).

    Raises:
      ConnectionError: one sentence naming the store and what to do.
    """
    import psycopg
    from ml_metadata.metadata_store import metadata_store

    server = parse(where)
    try:
        _create_database(server)
        with _connect(server, autocommit=True) as db:
            # Held until ML Metadata's tables and the indexes below are there: another command waits here.
            db.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
            try:
                metadata_store.MetadataStore(connection_config(where))
            except RuntimeError as e:
                said = str(e).split(". For more details")[0]
                raise ConnectionError(f"the ML Metadata store {server} cannot be used: {said}") from None
            _prefix_indexes(db)
    except psycopg.Error as e:
        raise _failure(server, e) from None


def _create_database(server: Server) -> None:
    """The database, created where it is missing (through the server's maintenance database, `postgres`)."""
    import psycopg

    try:
        _connect(server).close()
        return
    except psycopg.OperationalError as e:
        if "does not exist" not in str(e):
            raise
    with _connect(server, dbname="postgres", autocommit=True) as db:
        try:
            db.execute(f'CREATE DATABASE "{server.dbname}"')
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # another command created it meanwhile


# ML Metadata's PostgreSQL schema indexes every string property whole, and PostgreSQL's btree refuses an entry of
# more than 2,704 bytes: TFX's own execution properties are longer (an EvalConfig, a DistributionValidator config,
# their JSON schemas), so the first run's publish fails ("index row size ... exceeds btree version 4 maximum").
# Known upstream (google/ml-metadata#194, the fix proposed in #195): the index is rebuilt on the first 255
# characters, as MLMD's MySQL schema indexes a prefix. Same names, so MLMD's own start finds them there.
_STRING_INDEXES = {
    "idx_artifact_property_string": "artifactproperty",
    "idx_execution_property_string": "executionproperty",
    "idx_context_property_string": "contextproperty",
}
_PREFIX = "substring(string_value, 1, 255)"
# The advisory lock of a store's set-up: two commands starting at once ready it one after the other.
_LOCK = 0x66726175


def _prefix_indexes(db) -> None:
    found = dict(db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))
    for name, table in _STRING_INDEXES.items():
        if name in found and "substring" not in found[name]:
            with db.transaction():
                db.execute(f"DROP INDEX {name}")
                db.execute(f"CREATE INDEX {name} ON {table} (name, is_custom_property, {_PREFIX})")


def _sentence(said: str) -> str:
    if "password authentication failed" in said or "no password supplied" in said:
        return f"{said} (set {ENV_PASSWORD} or {ENV_PASSWORD_FILE})"
    if "Connection refused" in said or "timeout expired" in said or "could not translate host" in said:
        return f"{said} (is the server running, and does it listen there?)"
    return said
