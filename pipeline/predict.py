"""`fraud-pipeline predict`: scores CSV transactions in bulk with a pushed model, streaming, in input order.

Rows are read with the same contract as training (every feature column, each cell a number; `Class` optional and
kept in the output) and scored in batches through the model's own serving signature (serialized raw tf.Examples,
the Transform graph inside), so a score here is the score TF Serving gives. Memory holds one batch at a time.
"""

import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import contract
from components import csv_contract, serving
from components.csv_contract import FEATURES, FastReaderRefusedError, open_text
from components.rejection import DataRejectedError

BATCH_SIZE = contract.READ_BATCH_SIZE
# Plain progress lines (not on a terminal) at most this often.
PROGRESS_SECONDS = 10.0


class ModelNotFoundError(FileNotFoundError):
    """No pushed model where one was expected; the message says where it looked."""


def newest_model(serving_dir: str, warn=lambda line: print(line, file=sys.stderr)) -> Path:
    """The version TF Serving serves: the newest complete one under serving_dir (a newer folder still being copied,
    without saved_model.pb or its variables, is passed over as TF Serving passes it over, and named in a warning)."""
    found = serving.serving_now(serving_dir)
    if found is None:
        raise ModelNotFoundError(
            f"no pushed model under {serving_dir} (run `fraud-pipeline run` first, or give --model)"
        )
    for version in serving.versions(serving_dir):
        if version > found[0]:
            warn(
                f"fraud-pipeline: {serving.join(serving_dir, str(version))} is not a complete model (yet); "
                f"scoring with version {found[0]}, the one TF Serving serves"
            )
    return Path(found[1])


def input_files(path: str) -> list[str]:
    """A CSV file (plain or .gz), or the CSV files of a folder in name order."""
    source = Path(path)
    if source.is_dir():
        files = sorted(str(p) for p in source.iterdir() if p.is_file() and ".csv" in p.name)
        if not files:
            raise DataRejectedError(f"{path}: the folder holds no CSV file")
        return files
    if not source.is_file():
        raise DataRejectedError(f"{path}: no such file or folder")
    return [str(source)]


@dataclasses.dataclass
class Batch:
    """Rows that passed the contract: their file and line, feature values (rows x FEATURES) and label cells."""

    files: list[str]
    lines: object  # numpy int array
    values: object  # numpy float array
    labels: list[str] | None

    def __len__(self) -> int:
        return len(self.lines)

    def split(self, size: int) -> Iterator["Batch"]:
        for start in range(0, len(self), size):
            end = start + size
            labels = self.labels[start:end] if self.labels is not None else None
            yield Batch(self.files[start:end], self.lines[start:end], self.values[start:end], labels)


class Rejects:
    """Where bad rows go with --rejects: the row as it was, its file and line, and why."""

    def __init__(self, path: str | None):
        self.count = 0
        self._file = open_text(path, "w") if path else None
        self._writer = csv.writer(self._file) if self._file else None
        if self._writer:
            self._writer.writerow(["file", "line", "reason", "row"])

    def add(self, file: str, line: int, reason: str, cells: list[str]) -> None:
        if self._writer is None:
            raise DataRejectedError(f"{file}, line {line}: {reason} (--rejects FILE sets such rows aside)")
        self.count += 1
        self._writer.writerow([file, line, reason, ",".join(cells)])

    def close(self) -> None:
        if self._file:
            self._file.close()


def _normalized(labels) -> list[str]:
    """Label cells as the output writes them: '0', '1' or '' (a label written 1.0 comes out as 1)."""
    return [("" if (v is None or v != v) else str(int(v))) for v in labels]


def _fast_batches(file: str, header: list[str], label: int | None) -> Iterator[Batch]:
    """A clean file's rows, parsed by Arrow a block at a time (components.csv_contract.arrow_blocks).

    It only takes what it can judge exactly: every feature a finite number, the label 0, 1 or empty, no blank
    line, so that row i is line i + 2. Anything else raises FastReaderRefusedError with the rows it already gave, and
    the careful reader takes over from there, to name the line and column or set the row aside.
    """
    import numpy as np

    columns = list(FEATURES) + ([contract.LABEL] if label is not None else [])
    done = 0
    with csv_contract.refusals(file, lambda: done):
        for block in csv_contract.arrow_blocks(file, header, columns, keep_blank_lines=True):
            values = np.column_stack([block.column(name).to_numpy(zero_copy_only=False) for name in FEATURES])
            labels = None
            if label is not None:
                labels = block.column(contract.LABEL).to_numpy(zero_copy_only=False)
                known = np.isnan(labels) | (labels == 0) | (labels == 1)
                if not known.all():
                    raise FastReaderRefusedError(f"{file}: a {contract.LABEL} that is not 0 or 1", done)
            if not np.isfinite(values).all():
                raise FastReaderRefusedError(f"{file}: a feature that is not a finite number", done)
            lines = np.arange(done + 2, done + 2 + len(values))
            yield Batch([file] * len(values), lines, values, _normalized(labels) if labels is not None else None)
            done += len(values)


def _careful_rows(file: str, header: list[str], indices, label, rejects: Rejects, skip: int) -> Iterator[tuple]:
    """(line, values, label cell) of each good row after the first skip rows, in Python; bad rows to rejects."""
    for line, cells in csv_contract.careful_rows(file):
        if skip:
            skip -= 1
            continue
        problem = csv_contract.scoring_problem(cells, len(header), indices, label)
        if problem:
            rejects.add(file, line, problem, cells)
            continue
        yield (
            line,
            [float(cells[i]) for i in indices],
            _normalized([csv_contract.label(cells[label])])[0] if label is not None else "",
        )


def _careful_batches(file, header, indices, label, rejects, skip: int, size: int) -> Iterator[Batch]:
    rows = []
    for row in _careful_rows(file, header, indices, label, rejects, skip):
        rows.append(row)
        if len(rows) == size:
            yield _batch(file, rows, label)
            rows = []
    if rows:
        yield _batch(file, rows, label)


def _batch(file: str, rows: list[tuple], label) -> Batch:
    import numpy as np

    lines, values, labels = zip(*rows)
    return Batch([file] * len(rows), np.array(lines), np.array(values), list(labels) if label is not None else None)


def headers(files: Iterable[str]) -> dict[str, list[str]]:
    """Each file's header, checked against the contract (DataRejectedError naming the file otherwise)."""
    found = {file: csv_contract.read_header(file) for file in files}
    for file, header in found.items():
        csv_contract.scoring_columns(file, header)
    return found


def batches(
    files: Iterable[str], rejects: Rejects, size: int = BATCH_SIZE, checked: dict | None = None
) -> Iterator[Batch]:
    """The good rows of the files in input order, in batches of at most size; bad rows to rejects (or an error).

    checked: the files' headers from headers(), when the caller has read them already.
    """
    for file in files:
        header = checked[file] if checked else csv_contract.read_header(file)
        indices, label, _key = csv_contract.scoring_columns(file, header)
        try:
            for block in _fast_batches(file, header, label):
                yield from block.split(size)
        except FastReaderRefusedError as refused:
            yield from _careful_batches(file, header, indices, label, rejects, refused.rows_done, size)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class ExampleEncoder:
    """Serializes rows of the float features as tf.Example protos, a whole batch at once with numpy.

    Each feature is a map entry of fixed size (its name, then one float in a FloatList), so a serialized example is
    the same bytes for every row but for the 4 bytes of each value: they are filled in column by column. It parses
    to the same features as a tf.train.Example built field by field (a test checks it), at a fraction of the cost.
    """

    def __init__(self, names=FEATURES):
        import numpy as np

        self._np = np
        body, self._slots = b"", []
        for name in names:
            key = name.encode()
            feature = b"\x12\x06\x0a\x04"  # Feature.float_list (6 bytes): FloatList.value, packed, one float
            entry = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature) + 4) + feature
            prefix = b"\x0a" + _varint(len(entry) + 4) + entry  # one entry of Features.feature
            self._slots.append(len(body) + len(prefix))
            body += prefix + bytes(4)
        head = b"\x0a" + _varint(len(body))  # Example.features
        self._slots = [len(head) + slot for slot in self._slots]
        self._template = np.frombuffer(head + body, np.uint8)

    def encode(self, values) -> list[bytes]:
        np = self._np
        floats = np.ascontiguousarray(values, dtype="<f4")
        rows = np.tile(self._template, (len(floats), 1))
        for column, slot in enumerate(self._slots):
            rows[:, slot : slot + 4] = floats[:, column : column + 1].view(np.uint8)
        return [row.tobytes() for row in rows]


@dataclasses.dataclass(frozen=True)
class Model:
    """A pushed SavedModel's serving signature, its operating threshold and its version (the folder's name)."""

    path: Path
    version: str
    threshold: float
    serve: object

    @classmethod
    def load(cls, path: Path) -> "Model":
        import tensorflow as tf

        threshold_file = path / contract.OPERATING_THRESHOLD
        if not (path / "saved_model.pb").is_file() or not threshold_file.is_file():
            raise ModelNotFoundError(f"{path} is not a model pushed by this pipeline (no saved_model.pb or threshold)")
        threshold = json.loads(threshold_file.read_text())["threshold"]
        serve = tf.saved_model.load(str(path)).signatures[contract.SERVING_SIGNATURE]
        return cls(path, path.name, float(threshold), serve)

    def score(self, serialized: list[bytes]):
        """(probabilities, decisions) of serialized raw examples, as numpy arrays."""
        import tensorflow as tf

        out = self.serve(**{contract.SERVING_INPUT: tf.constant(serialized)})
        return out[contract.PROBABILITY_OUTPUT].numpy().ravel(), out[contract.DECISION_OUTPUT].numpy().ravel()


class Progress:
    """Rows scored and rows per second: a tqdm bar on a terminal, a plain line every PROGRESS_SECONDS otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.rows, self.started = stream, 0, time.monotonic()
        self._last = self.started
        self._bar = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(unit=" rows", unit_scale=True, file=stream, desc="scoring")

    def update(self, rows: int) -> None:
        self.rows += rows
        if self._bar is not None:
            self._bar.update(rows)
            return
        now = time.monotonic()
        if now - self._last >= PROGRESS_SECONDS:
            self._last = now
            print(f"scored {self.rows:,} rows ({self.rate():,.0f} rows/s)", file=self.stream, flush=True)

    def rate(self) -> float:
        return self.rows / max(time.monotonic() - self.started, 1e-9)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _partial_output(path: str, gz: bool):
    """The output while it is written: gzip when the final name ends in .gz (the partial name does not)."""
    import gzip

    return gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="")


@dataclasses.dataclass(frozen=True)
class Result:
    scored: int
    rejected: int
    seconds: float
    model: Path


def predict(data: str, model_path: Path, to: str, rejects_path: str | None = None, batch_size: int = BATCH_SIZE):
    """Scores every good row of data into `to` (CSV, gzip by extension), in input order; returns the counts.

    Raises:
      DataRejectedError: a header or row that breaks the contract (without rejects_path), naming file and line.
      ModelNotFoundError: model_path is not a pushed model.
    """
    files = input_files(data)
    model = Model.load(model_path)
    encoder = ExampleEncoder()
    many = len(files) > 1
    rejects = Rejects(rejects_path)
    progress = Progress()
    started = time.monotonic()
    partial = to + ".partial"
    try:
        with _partial_output(partial, gz=to.endswith(".gz")) as out:
            writer = csv.writer(out)
            checked = headers(files)
            labelled = any(contract.LABEL in header for header in checked.values())
            writer.writerow(
                (["file"] if many else [])
                + ["line", contract.TIME]
                + ([contract.LABEL] if labelled else [])
                + ["probability", "decision", "threshold", "model_version"]
            )
            time_index = FEATURES.index(contract.TIME)
            for batch in batches(files, rejects, batch_size, checked):
                probabilities, decisions = model.score(encoder.encode(batch.values))
                times = batch.values[:, time_index].tolist()
                lines = batch.lines.tolist()
                labels = batch.labels if batch.labels is not None else [""] * len(batch)
                threshold = f"{model.threshold:.9g}"
                for i, (probability, decision) in enumerate(zip(probabilities.tolist(), decisions.tolist())):
                    writer.writerow(
                        ([batch.files[i]] if many else [])
                        + [lines[i], repr(times[i])]
                        + ([labels[i]] if labelled else [])
                        + [f"{probability:.9g}", decision, threshold, model.version]
                    )
                progress.update(len(batch))
        os.replace(partial, to)
    finally:
        progress.close()
        rejects.close()
        if os.path.exists(partial):
            os.remove(partial)
    return Result(progress.rows, rejects.count, time.monotonic() - started, model.path)
