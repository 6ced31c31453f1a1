"""Which pushed version the server answers with, and the swap to another while requests are in flight.

The version is the one TF Serving would serve: the newest complete version under serving/ (components.lib.serving,
the same call `predict` makes; a `rollback` moves the newer ones aside, so it designates an older one). A version is
loaded through pipeline.scoring.predict.Model (its manifest checked before anything is read, then its warm-up
requests replayed), and only then does it take traffic: `current` is one reference, replaced in one assignment, so a
request that started on a version finishes on it (it holds the reference) and the next one gets the new one. A
version that does not verify or load is refused, named in the log and in the model's status, and the server keeps
the version it had; it is tried again only when its files change.

A watcher thread looks at the serving folder every `poll_seconds` (a listing and two stat calls), and at once on
SIGHUP (`fraud-pipeline rollback` and the Pusher need not know the server exists).
"""

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

import contract
from components.lib import serving
from datasets.spec import DatasetSpec
from pipeline.scoring.predict import Model
from pipeline.server.requests import Reader

log = logging.getLogger("fraud-pipeline.server")


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A version ready to answer: its model, its request reader and when it started serving."""

    version: int
    model: Model
    reader: Reader
    spec: DatasetSpec
    warmup_requests: int
    load_seconds: float
    serving_since: float
    # The online store of a spec with a history section (pipeline/online_store), None otherwise.
    store: object = None


@dataclasses.dataclass
class Status:
    """A version's state as TF Serving reports it in model_version_status: LOADING, AVAILABLE or END (unloaded, or
    refused: then with an error)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""

    def as_json(self) -> dict:
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


class NoServableVersionError(RuntimeError):
    """No version under the serving folder can be served at start; the message says why."""


def _token(folder: str) -> tuple:
    """Changes when a version's files do (a re-push or a repair): what a refused version is retried on."""
    found = []
    for name in ("saved_model.pb", contract.MANIFEST):
        try:
            st = os.stat(os.path.join(folder, name))
            found.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            found.append(None)
    return tuple(found)


class Versions:
    """The serving folder's current version, loaded and swapped.

    Args:
      serving_dir: the folder the Pusher pushes into.
      key: the field a request's rows may carry besides the features (the Reader's key).
      max_rows: rows a request may carry at most.
      on_swap: called with (old Loaded or None, new Loaded) after each swap.
      store: (output folder, URL or None) of the online store a version whose spec has a history section opens.
    """

    def __init__(self, serving_dir: str, key: str | None, max_rows: int, on_swap=None, store=None):
        self.serving_dir = serving_dir
        self.key = key
        self.max_rows = max_rows
        self.on_swap = on_swap
        self.store = store or (os.path.dirname(serving_dir.rstrip("/")), None)
        self.current: Loaded | None = None
        self.statuses: dict[int, Status] = {}
        self._refused: dict[int, tuple] = {}
        self._lock = threading.Lock()  # one load at a time (the watcher's, or a SIGHUP's)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self.swaps = 0

    def _load(self, version: int, folder: str) -> Loaded:
        started = time.monotonic()
        self.statuses[version] = Status(version, "LOADING")
        model = Model.load(Path(folder), verified=True)
        count = model.warm_up()
        spec = serving.dataset_of_model(folder)
        reader = Reader(model.feature_inputs, spec, self.key or spec.key or None, self.max_rows)
        store = None
        if spec.history:
            from pipeline.online_store.store import OnlineStore

            store = OnlineStore.open(spec, self.store[0], self.store[1])
        return Loaded(version, model, reader, spec, count, time.monotonic() - started, time.time(), store)

    def start(self) -> Loaded:
        """Loads the version serving/ designates.

        Raises:
          NoServableVersionError: none there, or the designated one does not verify or load (named).
        """
        now = serving.serving_now(self.serving_dir)
        if now is None:
            raise NoServableVersionError(
                f"no pushed model under {self.serving_dir} to serve (run `fraud-pipeline run` first)"
            )
        try:
            loaded = self._load(*now)
        except (serving.UnverifiedVersionError, OSError, ValueError) as e:
            raise NoServableVersionError(f"version {now[0]} under {self.serving_dir} cannot be served: {e}") from e
        self._swap(loaded)
        return loaded

    def check(self) -> bool:
        """Loads and swaps in the version serving/ designates if it is not the one serving; True if it swapped."""
        with self._lock:
            now = serving.serving_now(self.serving_dir)
            if now is None or (self.current is not None and now[0] == self.current.version):
                return False
            version, folder = now
            token = _token(folder)
            if self._refused.get(version) == token:
                return False
            try:
                loaded = self._load(version, folder)
            except Exception as e:  # noqa: BLE001 - any failure to load keeps the version serving; it is named
                self._refused[version] = token
                code = "DATA_LOSS" if isinstance(e, serving.UnverifiedVersionError) else "FAILED_PRECONDITION"
                self.statuses[version] = Status(version, "END", code, f"{type(e).__name__}: {e}")
                log.error(
                    "version %s refused, still serving version %s: %s",
                    version,
                    self.current.version if self.current else None,
                    e,
                )
                return False
            self._refused.pop(version, None)
            self._swap(loaded)
            return True

    def _swap(self, loaded: Loaded) -> None:
        old, self.current = self.current, loaded  # one assignment: a request sees the old or the new, whole
        self.statuses[loaded.version] = Status(loaded.version, "AVAILABLE")
        if old is not None:
            self.statuses[old.version] = Status(old.version, "END")
            self.swaps += 1
        log.info(
            "serving version %s (loaded and warmed up with %s requests in %.2f s)%s",
            loaded.version,
            loaded.warmup_requests,
            loaded.load_seconds,
            f", was {old.version}" if old else "",
        )
        if self.on_swap is not None:
            self.on_swap(old, loaded)

    def wake(self) -> None:
        """Look at the serving folder now (SIGHUP)."""
        self._wake.set()

    def watch(self, poll_seconds: float) -> None:
        """Starts the watcher thread."""

        def loop():
            while not self._stop.is_set():
                self._wake.wait(poll_seconds)
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    self.check()
                except Exception:  # noqa: BLE001 - the watcher outlives a bad listing; the error is logged
                    log.exception("looking for a new version under %s failed", self.serving_dir)

        self._thread = threading.Thread(target=loop, name="versions-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
