"""The online store: the recent rows and labels of each history entity, in SQLite or PostgreSQL, and the one owner
of their queries.

`predict` and the model server write every row they score into it (`add`) and read each row's windows at its event
time (`features`); `outcomes` writes the labels as they arrive (`label`). Each window is one SQL aggregate with a
FILTER clause over an (entity, time) index range; datasets.history.finish_row turns the partial sums into the
features with the arithmetic training uses (datasets.history.finish, called by components/example_gen/history.py),
so the two sides agree. A single row (a model server's request) is one statement: its entries' windows side by
side and, on PostgreSQL, its write (`_serve_one`). The store keeps the longest window plus the delay before its
newest row and deletes the rest (`prune`, every PRUNE_ROWS rows written).

The SQL is the same on both databases (FILTER, ON CONFLICT DO NOTHING: SQLite 3.30+ and PostgreSQL 9.5+) but for
the placeholders (? and %s, :name and %(name)s) and PostgreSQL's INSERT in a WITH, and this module writes it.
SQLite is the default, a file under the output folder, so a single user needs no server; a team points the spec's
online_store (or --online-store) at PostgreSQL.
"""

import contextlib
import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from datasets import history as history_lib
from datasets.spec import FLOAT, DatasetSpec, History

TABLE = "fraud_pipeline_history"
# The SQLite file under the output folder.
SQLITE_FILE = Path("online_store") / "history.sqlite"
# Rows written between two prunings (a pruning is one DELETE over the time index; after each request it would be
# most of a request's cost).
PRUNE_ROWS = 10_000
# How long a writer waits for another's lock (SQLite) before it fails.
BUSY_SECONDS = 30


class OnlineStoreError(RuntimeError):
    """The store cannot be opened or written (a server that does not answer, a file that cannot be created)."""


def _source(item: History) -> str:
    """What a history entry's rows are stored under: its entity and value column (two entries of one entity with
    different values keep their own rows)."""
    return f"{item.entity}:{item.value}"


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class OnlineStore:
    """One connection to the store (SQLite file or PostgreSQL URL) for one dataset spec's history section."""

    def __init__(self, spec: DatasetSpec, url: str):
        self.spec = spec
        self.url = url
        self._lock = threading.Lock()
        self._postgres = url.startswith(("postgresql://", "postgres://"))
        # The database's own errors (a server gone, a locked file): OnlineStoreError naming the store.
        self._errors: tuple = (sqlite3.Error,)
        try:
            if self._postgres:
                import psycopg

                self._errors = (psycopg.Error,)
                # Autocommit: a single row's request is one statement, its own transaction, one round trip
                # (_serve_one); the other calls open a transaction of their own (_transaction).
                self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            else:
                Path(url).parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(url, timeout=BUSY_SECONDS, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                # Committed writes survive a crash of the process; a power cut may lose the last ones (the rows are
                # written again by the next scoring of them, and labels by the next `outcomes`).
                self._db.execute("PRAGMA synchronous=NORMAL")
        except (*self._errors, OSError) as e:
            raise OnlineStoreError(f"cannot open the online store {self.where}: {e}") from e
        self._p = "%s" if self._postgres else "?"
        self._create()
        self._queries = {_source(item): self._window_query(item) for item in spec.history}  # for batches
        self._one_row: dict[tuple, str] = {}  # _serve_one's statements by (entries with an entity, rows written)
        self._added = PRUNE_ROWS  # the first write prunes what an earlier process left
        self._time_is_float = spec.example_kind(spec.time) == FLOAT

    @property
    def where(self) -> str:
        """The store's place without a password."""
        if self._postgres:
            return self.url.split("@")[-1] if "@" in self.url else self.url
        return self.url

    @classmethod
    def open(cls, spec: DatasetSpec, output: str | os.PathLike, url: str | None = None) -> "OnlineStore":
        """The store of a spec: `url` (a flag), else the spec's online_store, else SQLite under `output`."""
        return cls(spec, url or spec.online_store or str(Path(output) / SQLITE_FILE))

    def close(self) -> None:
        self._db.close()

    # -- the SQL ------------------------------------------------------------------------------------------------

    def _create(self) -> None:
        real = "DOUBLE PRECISION" if self._postgres else "REAL"
        statements = [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (source TEXT NOT NULL, entity TEXT NOT NULL, time {real} NOT NULL, "
            f"row_key TEXT NOT NULL, value {real} NOT NULL, label SMALLINT, PRIMARY KEY (source, entity, row_key))",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_window ON {TABLE} (source, entity, time)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_key ON {TABLE} (row_key)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)",  # the newest row, and what to prune
        ]
        with self._transaction("cannot create the online store's table in") as cursor:
            for statement in statements:
                cursor.execute(statement)

    def _named(self, name: str) -> str:
        """A named placeholder: one value however often the statement reads it (and psycopg caches the statement's
        parsing only under 50 parameters and 4 kB)."""
        return f"%({name})s" if self._postgres else f":{name}"

    def _window_query(self, item: History, i: int = 0) -> str:
        """One row's windows of one entry: for each window the earlier rows, their value's sum and their frauds, each
        an aggregate filtered to the window's bounds, over the entity's rows in reach. The bounds are
        datasets.history.bounds written in SQL, the same float64 subtractions in the same order, so they are equal
        to the last bit. Its parameters, named with the suffix `i` (several entries in one statement):
        _window_parameters."""
        t = self._named(f"t{i}")
        end = f"({t} - {item.delay_seconds})" if item.delay_seconds else t
        parts = []
        for window in item.window_seconds:
            inside = f"time > {end} - {window} AND time {'<=' if item.delay_seconds else '<'} {end}"
            parts += [
                f"count(*) FILTER (WHERE {inside})",
                f"coalesce(sum(value) FILTER (WHERE {inside}), 0)",
                f"count(*) FILTER (WHERE {inside} AND label = 1)",
            ]
        return (
            f"SELECT {', '.join(parts)} FROM {TABLE} WHERE source = {self._named(f's{i}')} "
            f"AND entity = {self._named(f'e{i}')} AND time > {t} - {item.span_seconds} AND time < {t}"
        )

    @staticmethod
    def _window_parameters(item: History, entity: str, time: float, i: int = 0) -> dict:
        return {f"t{i}": time, f"s{i}": _source(item), f"e{i}": entity}

    @staticmethod
    def _partials_of(item: History, row) -> dict:
        """_window_query's answer (3 columns a window) as the partial sums datasets.history.finish_row takes."""
        return {name: tuple(row[3 * i : 3 * i + 3]) for i, name in enumerate(item.windows)}

    def _partials(self, cursor, item: History, entity: str, time: float) -> dict:
        cursor.execute(self._queries[_source(item)], self._window_parameters(item, entity, time))
        return self._partials_of(item, cursor.fetchone())

    def _one_row_query(self, present: tuple, written: int) -> str:
        """_serve_one's statement: the windows of the entries with an entity, each _window_query as a subquery of one
        row, side by side; the row's write goes first in the same statement (a WITH of the INSERT: the SELECT reads
        the snapshot before it, which is what the row's windows hold anyway, see _serve_one)."""
        sql = self._one_row.get((present, written))
        if sql is None:
            parts = [
                f"({self._window_query(item, i)}) AS e{i}"
                for i, (item, there) in enumerate(zip(self.spec.history, present))
                if there
            ]
            sql = f"SELECT * FROM {', '.join(parts)}"
            if written:
                fields = ("source", "entity", "time", "key", "value")
                values = ", ".join(
                    "(" + ", ".join(self._named(f"w{j}{field}") for field in fields) + ")" for j in range(written)
                )
                sql = (
                    f"WITH written AS (INSERT INTO {TABLE} (source, entity, time, row_key, value) VALUES {values} "
                    f"ON CONFLICT DO NOTHING) {sql}"
                )
            self._one_row[(present, written)] = sql
        return sql

    # -- what the scorers call --------------------------------------------------------------------------------

    def _row_key(self, row: dict) -> str:
        if self.spec.key and _text(row.get(self.spec.key)) is not None:
            return _text(row[self.spec.key])
        cells = "\x1f".join(f"{k}={row[k]!r}" for k in sorted(row) if k not in self.spec.history_features)
        return hashlib.sha1(cells.encode()).hexdigest()

    def _time(self, row: dict) -> float | None:
        value = row.get(self.spec.time)
        if value is None or (isinstance(value, float) and value != value):
            return None
        return history_lib.stored(value, self._time_is_float)

    def _value(self, item: History, row: dict) -> float:
        if not item.value:
            return 0.0
        value = row.get(item.value)
        is_float = self.spec.example_kind(item.value) == FLOAT
        return history_lib.stored(value, is_float) if value is not None else float("nan")

    def add(self, rows: list[dict]) -> None:
        """Writes rows (typed cells by column, as the scorers encode them) into the store: each entry's entity, the
        row's time, key and value; a row already there (the same key) is kept as it was. Prunes every PRUNE_ROWS
        rows written."""
        with self._transaction() as cursor:
            self._insert(cursor, rows)
        self._prune_now()

    def _prune_now(self) -> None:
        if self._added >= PRUNE_ROWS:
            self.prune()

    def _records(self, rows: list[dict]) -> list[tuple]:
        """The rows as the table holds them: one (source, entity, time, key, value) an entry with an entity."""
        records = []
        for row in rows:
            time = self._time(row)
            if time is None:
                continue
            key = self._row_key(row)
            for item in self.spec.history:
                entity = _text(row.get(item.entity))
                value = self._value(item, row)
                if entity is not None and value == value:
                    records.append((_source(item), entity, time, key, value))
        return records

    def _insert(self, cursor, rows: list[dict]) -> None:
        self._write(cursor, self._records(rows))

    def _write(self, cursor, records: list[tuple]) -> None:
        if not records:
            return
        p = self._p
        insert = (
            f"INSERT INTO {TABLE} (source, entity, time, row_key, value) VALUES ({p}, {p}, {p}, {p}, {p}) "
            "ON CONFLICT DO NOTHING"
        )
        cursor.executemany(insert, records)
        self._added += len(records)

    def label(self, labels: dict[str, int]) -> int:
        """Writes labels that arrived (row key -> 0/1) on the rows the store has (one for each history entry);
        returns how many of the keys it had."""
        if not labels:
            return 0
        update = f"UPDATE {TABLE} SET label = {self._p} WHERE row_key = {self._p}"
        found = 0
        with self._transaction() as cursor:
            for key, value in labels.items():
                cursor.execute(update, (int(value), str(key)))
                found += cursor.rowcount > 0
        return found

    def prune(self) -> None:
        """Deletes the rows older than the longest reach (window plus delay) before the newest row."""
        with self._transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE time < (SELECT max(time) FROM {TABLE}) - {self._p}",
                (self.spec.history_span,),
            )
        self._added = 0

    @contextlib.contextmanager
    def _transaction(self, what: str = "the online store"):
        """A cursor in one transaction, committed at the end (which also ends a transaction of reads); the
        database's own errors become OnlineStoreError naming the store."""
        with self._lock:
            try:
                if self._postgres:
                    with self._db.transaction():
                        yield self._db.cursor()
                else:
                    yield self._db.cursor()
                    self._db.commit()
            except self._errors as e:
                self._rollback()
                raise OnlineStoreError(f"{what} {self.where}: {e}") from e

    def _rollback(self) -> None:
        if self._postgres:  # psycopg's transaction block has rolled back already
            return
        try:
            self._db.rollback()
        except self._errors:  # a connection that is gone has nothing to roll back
            pass

    def features(self, rows: list[dict]) -> list[dict[str, float]]:
        """Each row's history features at its event time (write the rows with `add` first: a row then sees the
        earlier rows of its own batch, and the same windows as training gives it)."""
        with self._transaction() as cursor:
            return self._features(cursor, rows)

    def _features(self, cursor, rows: list[dict]) -> list[dict[str, float]]:
        out = []
        for row in rows:
            time = self._time(row)
            values: dict[str, float] = {}
            for item in self.spec.history:
                entity = _text(row.get(item.entity))
                if time is None or entity is None:
                    values.update(history_lib.missing(item))
                    continue
                partials = self._partials(cursor, item, entity, time)
                values.update(history_lib.finish_row(item, partials, self._value(item, row)))
            out.append(values)
        return out

    def serve(self, rows: list[dict]) -> list[dict[str, float]]:
        """`add`, then each row's history features, in one transaction (what a scorer calls for a batch)."""
        if len(rows) == 1:
            return [self._serve_one(rows[0])]
        with self._transaction() as cursor:
            self._insert(cursor, rows)
            served = self._features(cursor, rows)
        self._prune_now()
        return served

    def _serve_one(self, row: dict) -> dict[str, float]:
        """`serve` of one row (a single-row request): its windows' reads in one statement, and its write. On
        PostgreSQL the write is in the same statement, one round trip and its own transaction (the connection
        autocommits); SQLite, which has no INSERT in a WITH, writes after the reads and commits. Either way the reads
        need not see the write: a row's windows end before its own time (datasets.history.bounds: earlier rows only,
        and a delayed window ends the delay before it), so they are the values of `serve`'s write-then-read."""
        time = self._time(row)
        entities = [None if time is None else _text(row.get(item.entity)) for item in self.spec.history]
        records = self._records([row])
        present = tuple(entity is not None for entity in entities)
        if not any(present):  # nothing to write or read: every entry's empty values
            return {name: value for item in self.spec.history for name, value in history_lib.missing(item).items()}
        fields = ("source", "entity", "time", "key", "value")
        params = {f"w{j}{field}": cell for j, record in enumerate(records) for field, cell in zip(fields, record)}
        for i, (item, entity) in enumerate(zip(self.spec.history, entities)):
            if entity is not None:
                params.update(self._window_parameters(item, entity, time, i))
        with self._lock:
            try:
                cursor = self._db.cursor()
                if self._postgres:
                    cursor.execute(self._one_row_query(present, len(records)), params)
                    answer = cursor.fetchone()
                    self._added += len(records)
                else:
                    cursor.execute(self._one_row_query(present, 0), params)
                    answer = cursor.fetchone()
                    self._write(cursor, records)
                    self._db.commit()
            except self._errors as e:
                self._rollback()
                raise OnlineStoreError(f"the online store {self.where}: {e}") from e
        values: dict[str, float] = {}
        at = 0
        for item, entity in zip(self.spec.history, entities):
            if entity is None:
                values.update(history_lib.missing(item))
                continue
            width = 3 * len(item.windows)
            partials = self._partials_of(item, answer[at : at + width])
            at += width
            values.update(history_lib.finish_row(item, partials, self._value(item, row)))
        self._prune_now()
        return values

    def enrich(self, rows: list[dict]) -> list[dict]:
        """`serve`, each row's features put into the row (what the model's examples are made of)."""
        for row, values in zip(rows, self.serve(rows)):
            row.update(values)
        return rows

    def count(self) -> int:
        """The rows the store holds (one a history entry of each row)."""
        with self._transaction() as cursor:
            cursor.execute(f"SELECT count(*) FROM {TABLE}")
            return int(cursor.fetchone()[0])
