"""The model server's traffic, recorded as `predict`'s batches are: windows under OUTPUT/scoring/ that `outcomes`
joins with the labels that arrive later and whose serving skew `fraud-pipeline serve` measures once they close.

Each request's rows go, after the response is computed, into a bounded buffer; one writer thread takes them from it
every DRAIN_SECONDS and writes them into the open window (pipeline/scoring/record.py's ScoresWriter: scores, key,
event time, amount, version; plus the raw features, for the skew). A window closes after `window_rows` rows,
`window_seconds` of age, a version swap (a window is one version's) or at shutdown, and is published whole (renamed
from .partial). Only the newest `keep_windows`
windows are kept: the oldest are removed as new ones close, so the record never grows without limit. A buffer that is
full (the disk slower than the traffic) drops the rows rather than the requests, and says how many in the next
window's batch.json.
"""

import collections
import logging
import os
import shutil
import threading
import time

import numpy as np

import contract
from pipeline.scoring import record as record_lib

log = logging.getLogger("fraud-pipeline.server")

WINDOW_ROWS = 10_000
WINDOW_SECONDS = 300.0
KEEP_WINDOWS = 200
QUEUE_REQUESTS = 10_000
# How often the writer takes what the requests left (and closes a window past its age).
DRAIN_SECONDS = 0.05
# Rows buffered before they are written to the window's scores file.
FLUSH_ROWS = 4096
PENDING_SKEW = {"measured": False, "pending": True, "reason": "measured once the window closes (fraud-pipeline serve)"}


def _example_columns(serialized: list[bytes], names) -> dict:
    """The features of serialized tf.Examples by name (a request on the examples signature), NaN or "" where an
    example has none."""
    import tensorflow as tf

    columns = {name: [] for name in names}
    for raw in serialized:
        feature = tf.train.Example.FromString(raw).features.feature
        for name, column in columns.items():
            value = None
            if name in feature:
                f = feature[name]
                found = list(f.float_list.value) or list(f.int64_list.value) or list(f.bytes_list.value)
                value = found[0] if found else None
            column.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return columns


def _remove_abandoned(output: str) -> None:
    """Removes the open windows of servers that died (killed before they closed them): their writer's pid is gone."""
    root = record_lib.scoring_root(output)
    if not root.is_dir():
        return
    for folder in root.glob(f"*{record_lib.ONLINE_SUFFIX}.partial"):
        pid = folder.name.rsplit("-p", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(folder, ignore_errors=True)


class Window:
    """One open window: its scores writer, and the requests it took (kept as they came, numpy arrays and all, and
    turned into columns only when FLUSH_ROWS of them wait or the window closes: a request's own cost is an append)."""

    def __init__(self, output: str, loaded, key: str | None):
        self.loaded = loaded
        self.key = key
        suffix = f"-p{os.getpid()}{record_lib.ONLINE_SUFFIX}"
        ranked = loaded.spec.card_precision
        self.writer = record_lib.ScoresWriter(
            output, labelled=False, key=key, suffix=suffix, card=ranked.entity if ranked else ""
        )
        self.opened = time.monotonic()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        model, spec = loaded.model, loaded.spec
        self.names = sorted(model.feature_inputs) or list(spec.features)
        self.features: dict[str, list] = {name: [] for name in self.names}  # a list of chunks a feature
        self.pending: list = []
        self.pending_rows = 0
        self.requests = 0
        self.rows = 0

    def add(self, parsed, probabilities, decisions) -> None:
        self.pending.append((parsed, probabilities, decisions))
        self.pending_rows += parsed.rows
        self.rows += parsed.rows
        self.requests += 1
        if self.pending_rows >= FLUSH_ROWS:
            self.flush()

    def _columns(self, parsed) -> dict:
        """A request's features by name (arrays or lists, None/NaN/"" where missing)."""
        if parsed.matrix is not None:
            return {name: parsed.matrix[:, j] for j, name in enumerate(self.names)}
        if parsed.signature == contract.FEATURES_SIGNATURE:
            return {n: parsed.inputs[n] for n in self.names if n in parsed.inputs}
        return _example_columns(parsed.inputs[contract.SERVING_INPUT], self.names)

    def flush(self) -> None:
        """Writes the waiting requests' scores, and keeps their features for the window's features file."""
        if not self.pending:
            return
        spec = self.loaded.spec
        first = self.writer.rows
        keys, times, amounts, probabilities, decisions, cards = [], [], [], [], [], []
        for parsed, probability, decision in self.pending:
            columns = self._columns(parsed)
            for name in self.names:
                self.features[name].append(columns.get(name, [None] * parsed.rows))
            missing = [None] * parsed.rows
            keys.extend(parsed.keys if parsed.keys is not None else missing)
            times.append(_floats(columns.get(spec.time, missing)))
            amounts.append(_floats(columns.get(spec.amount, missing) if spec.amount else missing))
            probabilities.append(probability)
            decisions.append(decision)
            if self.writer.card:
                cards.extend(list(columns.get(self.writer.card, missing)))
        n = self.pending_rows
        self.writer.add_columns(
            ["online"] * n,
            list(range(first + 1, first + n + 1)),
            keys,
            np.concatenate(times),
            np.concatenate(amounts),
            None,
            np.concatenate(probabilities).astype(np.float32),
            np.concatenate(decisions).astype(np.int8),
            self.loaded.model.version,
            cards or None,
        )
        self.pending, self.pending_rows = [], 0

    def close(self, dropped: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        model, spec = self.loaded.model, self.loaded.spec
        if self.rows:
            arrays = []
            for name in self.names:
                values = [v for chunk in self.features[name] for v in list(chunk)]
                values = [None if v is None or (isinstance(v, float) and v != v) or v == "" else v for v in values]
                kind = model.feature_inputs.get(name, "")
                if kind.startswith("float"):
                    arrays.append(pa.array([None if v is None else float(v) for v in values], pa.float64()))
                elif kind.startswith("int"):
                    arrays.append(pa.array([None if v is None else int(v) for v in values], pa.int64()))
                else:
                    arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
            table = pa.Table.from_arrays(arrays, self.names)
            pq.write_table(table, str(self.writer.folder / record_lib.FEATURES_FILE))
        self.writer.close(
            {
                "source": "online",
                "model": {
                    "version": model.version,
                    "path": str(model.path),
                    "threshold": model.threshold,
                    "identity": self.loaded_identity(),
                },
                "inputs": [],
                "key": self.key,
                "labelled": False,
                "rejected": 0,
                "requests": self.requests,
                "dropped_rows": dropped,
                "scores_to": None,
                "skew": PENDING_SKEW,
                "statistics_rows": 0,
                "dataset": {"name": spec.name, "digest": spec.digest()},
                "started_at": self.started_at,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    def loaded_identity(self) -> str | None:
        from components.lib import serving

        return serving.identity_of(str(self.loaded.model.path))


def _floats(values) -> np.ndarray:
    """Event times or amounts as float64, NaN where missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64)
    return np.asarray([np.nan if v is None else float(v) for v in values], np.float64)


class Recorder:
    """Records scored requests in windows from a writer thread (see the module docstring).

    Args:
      output: the output folder whose scoring/ receives the windows.
      key: the key field recorded with each row (None: rows are numbered within their window).
    """

    def __init__(
        self,
        output: str,
        key: str | None,
        window_rows: int = WINDOW_ROWS,
        window_seconds: float = WINDOW_SECONDS,
        keep_windows: int = KEEP_WINDOWS,
        queue_requests: int = QUEUE_REQUESTS,
    ):
        self.output, self.key = output, key
        self.window_rows, self.window_seconds, self.keep_windows = window_rows, window_seconds, keep_windows
        # A deque the request path appends to and the writer drains every DRAIN_SECONDS: no thread is woken per
        # request (a queue's handoff woke the writer for each one, and the request waited for the GIL meanwhile:
        # docs/benchmarks.md, the model server).
        self._pending: collections.deque = collections.deque()
        self._limit = queue_requests
        self._wake = threading.Event()
        self._flushes: collections.deque = collections.deque()
        self._stopping = False
        self._window: Window | None = None
        self._dropped = 0
        self.dropped_total = 0
        self.windows_closed = 0
        _remove_abandoned(output)
        self._thread = threading.Thread(target=self._run, name="online-recorder", daemon=True)
        self._thread.start()

    def add(self, loaded, parsed, probabilities, decisions) -> None:
        """Keeps a scored request for the writer (never blocks: past queue_requests waiting, its rows are dropped and
        counted)."""
        if len(self._pending) >= self._limit:
            self._dropped += parsed.rows
            self.dropped_total += parsed.rows
            return
        self._pending.append((loaded, parsed, probabilities, decisions))

    def flush(self) -> None:
        """Closes the open window once what is waiting is written (a swap, a test, shutdown)."""
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        done.wait()

    def close(self) -> None:
        """Writes what is waiting, closes the window and stops the writer."""
        self.flush()
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(DRAIN_SECONDS)
            self._wake.clear()
            flushes = []
            while self._flushes:
                flushes.append(self._flushes.popleft())
            try:
                while self._pending:
                    self._handle(self._pending.popleft())
                self._handle(("flush",) if flushes else ())
            except Exception:  # noqa: BLE001 - the recorder outlives a bad window; requests go on being answered
                log.exception("recording online traffic under %s failed; the window is abandoned", self.output)
                if self._window is not None:
                    self._window.writer.abandon()
                    self._window = None
            for done in flushes:
                done.set()

    def _handle(self, item) -> None:
        flush = item == ("flush",)
        window = self._window
        if flush or (window is not None and time.monotonic() - window.opened >= self.window_seconds):
            self._close()
        if flush or not item:
            return
        loaded, parsed, probabilities, decisions = item
        if self._window is not None and self._window.loaded.version != loaded.version:
            self._close()
        if self._window is None:
            self._window = Window(self.output, loaded, self.key)
        self._window.add(parsed, probabilities, decisions)
        if self._window.rows >= self.window_rows:
            self._close()

    def _close(self) -> None:
        if self._window is None:
            return
        window, self._window = self._window, None
        window.close(self._dropped)
        self._dropped = 0
        self.windows_closed += 1
        for old in record_lib.online_batches(self.output)[: -self.keep_windows]:
            shutil.rmtree(old, ignore_errors=True)
