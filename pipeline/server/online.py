"""The model server's traffic, recorded as `predict`'s batches are: windows under OUTPUT/scoring/ that `outcomes`
joins with the labels that arrive later and whose serving skew `fraud-pipeline serve` measures once they close.

Each request's rows go, after the response is computed, into a bounded queue; one writer thread writes them into the
open window (pipeline/scoring/record.py's ScoresWriter: scores, key, event time, amount, version; plus the raw
features, for the skew). A window closes after `window_rows` rows, `window_seconds` of age, a version swap (a window
is one version's) or at shutdown, and is published whole (renamed from .partial). Only the newest `keep_windows`
windows are kept: the oldest are removed as new ones close, so the record never grows without limit. A queue that is
full (the disk slower than the traffic) drops the rows rather than the requests, and says how many in the next
window's batch.json.
"""

import logging
import os
import queue
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
# Rows buffered before they are written to the window's scores file.
FLUSH_ROWS = 4096
_PENDING = ("lines", "keys", "times", "amounts", "probabilities", "decisions")
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
    """One open window: its scores writer and its features."""

    def __init__(self, output: str, loaded, key: str | None):
        self.loaded = loaded
        self.key = key
        suffix = f"-p{os.getpid()}{record_lib.ONLINE_SUFFIX}"
        self.writer = record_lib.ScoresWriter(output, labelled=False, key=key, suffix=suffix)
        self.opened = time.monotonic()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.features: dict[str, list] = {}
        self.pending = {k: [] for k in _PENDING}
        self.requests = 0
        self.rows = 0

    def add(self, parsed, probabilities, decisions) -> None:
        """Appends a request's rows (written to the scores file a block of FLUSH_ROWS at a time: a Parquet write a
        request cost more than the request)."""
        spec, model = self.loaded.spec, self.loaded.model
        names = list(model.feature_inputs) or list(spec.features)
        if parsed.signature == contract.FEATURES_SIGNATURE:
            columns = {n: parsed.inputs[n].tolist() for n in names if n in parsed.inputs}
        else:
            columns = _example_columns(parsed.inputs[contract.SERVING_INPUT], names)
        n = parsed.rows
        for name, values in columns.items():
            self.features.setdefault(name, [None] * self.rows).extend(values)
        missing = [None] * n
        times, amounts = columns.get(spec.time, missing), columns.get(spec.amount, missing) if spec.amount else missing
        pending = self.pending
        pending["lines"].extend(range(self.rows + 1, self.rows + n + 1))
        pending["keys"].extend(parsed.keys if parsed.keys is not None else missing)
        pending["times"].extend(np.nan if t is None else float(t) for t in times)
        pending["amounts"].extend(np.nan if a is None else float(a) for a in amounts)
        pending["probabilities"].extend(probabilities.tolist())
        pending["decisions"].extend(decisions.tolist())
        self.rows += n
        self.requests += 1
        if len(pending["lines"]) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        pending = self.pending
        if pending["lines"]:
            self.writer.add_columns(
                ["online"] * len(pending["lines"]),
                pending["lines"],
                pending["keys"],
                np.asarray(pending["times"], np.float64),
                np.asarray(pending["amounts"], np.float64),
                None,
                np.asarray(pending["probabilities"], np.float32),
                np.asarray(pending["decisions"], np.int8),
                self.loaded.model.version,
            )
        self.pending = {k: [] for k in _PENDING}

    def close(self, dropped: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        model, spec = self.loaded.model, self.loaded.spec
        if self.features:
            arrays, names = [], []
            for name, values in self.features.items():
                kind = model.feature_inputs.get(name, "")
                values = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else v for v in values]
                values += [None] * (self.rows - len(values))
                if kind.startswith("float"):
                    arrays.append(pa.array(values, pa.float64()))
                elif kind.startswith("int"):
                    arrays.append(pa.array(values, pa.int64()))
                else:
                    arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
                names.append(name)
            pq.write_table(pa.Table.from_arrays(arrays, names), str(self.writer.folder / record_lib.FEATURES_FILE))
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
        self._queue: queue.Queue = queue.Queue(maxsize=queue_requests)
        self._window: Window | None = None
        self._dropped = 0
        self.dropped_total = 0
        self.windows_closed = 0
        _remove_abandoned(output)
        self._thread = threading.Thread(target=self._run, name="online-recorder", daemon=True)
        self._thread.start()

    def add(self, loaded, parsed, probabilities, decisions) -> None:
        """Queues a scored request (never blocks: a full queue drops its rows, counted)."""
        try:
            self._queue.put_nowait((loaded, parsed, probabilities, decisions))
        except queue.Full:
            self._dropped += parsed.rows
            self.dropped_total += parsed.rows

    def flush(self) -> None:
        """Closes the open window once what is queued is written (a swap, a test, shutdown)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait()

    def close(self) -> None:
        """Writes what is queued, closes the window and stops the writer."""
        self.flush()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = ()
            if item is None:
                return
            try:
                self._handle(item)
            except Exception:  # noqa: BLE001 - the recorder outlives a bad window; requests go on being answered
                log.exception("recording online traffic under %s failed; the window is abandoned", self.output)
                if self._window is not None:
                    self._window.writer.abandon()
                    self._window = None
            if isinstance(item, tuple) and len(item) == 2 and item[0] == "flush":
                item[1].set()

    def _handle(self, item) -> None:
        flush = isinstance(item, tuple) and len(item) == 2 and item[0] == "flush"
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
