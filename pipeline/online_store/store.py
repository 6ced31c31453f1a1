"""The online store: the recent rows and labels of each history entity, in SQLite or PostgreSQL, and the one owner
of their queries.

`predict` and the model server write every row they score into it (`add`) and read each row's windows at its event
time (`features`); `outcomes` writes the labels as they arrive (`label`). Each window is one SQL aggregate with a
FILTER clause over an (entity, time) index range; datasets.history.finish turns the partial sums into the
features with the code training uses (components/example_gen/history.py), so the two sides agree. The store keeps
the longest window plus the delay before its newest row and deletes the rest (`prune`, after each write).

The SQL is the same on both databases (FILTER, ON CONFLICT DO NOTHING: SQLite 3.30+ and PostgreSQL 9.5+); only the
placeholder differs (? and %s), and this module writes it. SQLite is the default, a file under the output folder,
so a single user needs no server; a team points the spec's online_store (or --online-store) at PostgreSQL.
"""

import contextlib
import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

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
                self._db = psycopg.connect(url, autocommit=False, connect_timeout=10)
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
        self._queries = {_source(item): self._window_query(item) for item in spec.history}
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

    def _window_query(self, item: History) -> str:
        """One row's windows of one entry: for each window the earlier rows, their value's sum and their frauds, each
        an aggregate filtered to the window's bounds (datasets.history.bounds), over the entity's rows in reach."""
        p = self._p
        parts = []
        for _ in item.windows:
            inside = f"time > {p} AND time {'<=' if item.delay_seconds else '<'} {p}"
            parts += [
                f"count(*) FILTER (WHERE {inside})",
                f"coalesce(sum(value) FILTER (WHERE {inside}), 0)",
                f"count(*) FILTER (WHERE {inside} AND label = 1)",
            ]
        return (
            f"SELECT {', '.join(parts)} FROM {TABLE} WHERE source = {p} AND entity = {p} AND time > {p} AND time < {p}"
        )

    def _partials(self, cursor, item: History, entity: str, time: float) -> dict:
        params = []
        for window in item.window_seconds:
            low, high, _ = history_lib.bounds(item, time, window)
            params += [low, high] * 3
        params += [_source(item), entity, time - item.span_seconds, time]
        cursor.execute(self._queries[_source(item)], params)
        row = cursor.fetchone()
        out = {}
        for i, name in enumerate(item.windows):
            count, total, frauds = row[3 * i : 3 * i + 3]
            out[name] = history_lib.Partials(np.array([count]), np.array([float(total)]), np.array([frauds]))
        return out

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

    def _insert(self, cursor, rows: list[dict]) -> None:
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
                yield self._db.cursor()
                self._db.commit()
            except self._errors as e:
                self._rollback()
                raise OnlineStoreError(f"{what} {self.where}: {e}") from e

    def _rollback(self) -> None:
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
                finished = history_lib.finish(item, partials, np.array([self._value(item, row)]))
                values.update({name: float(array[0]) for name, array in finished.items()})
            out.append(values)
        return out

    def serve(self, rows: list[dict]) -> list[dict[str, float]]:
        """`add`, then each row's history features, in one transaction (what a scorer calls for a batch)."""
        with self._transaction() as cursor:
            self._insert(cursor, rows)
            served = self._features(cursor, rows)
        self._prune_now()
        return served

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
