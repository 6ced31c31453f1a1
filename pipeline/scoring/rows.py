"""Rows to score: the files of --data, checked against the CSV contract (components/lib/csv_contract.py) and read in
batches in input order, fast (Arrow) where the file is clean and carefully (a row at a time) from where it is not;
and the serialized tf.Examples the model's serving signature takes, encoded a batch at a time.

No TensorFlow, Beam or TFX: numpy and pyarrow only.
"""

import csv
import dataclasses
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

import contract
from components.lib import csv_contract
from components.lib.csv_contract import FEATURES, FastReaderRefusedError, open_text
from components.lib.rejection import DataRejectedError
from components.lib.wire import varint
from datasets.spec import DatasetSpec

BATCH_SIZE = contract.READ_BATCH_SIZE


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
    """Rows that passed the contract: their file and line, feature values (rows x FEATURES), label cells ('0', '1'
    or '', None without the column) and keys (None without --key)."""

    files: list[str]
    lines: np.ndarray
    values: np.ndarray
    labels: list[str] | None
    keys: list[str] | None = None
    # A dataset of another spec than the default (spec_batches): values holds the rows' time and amount (NaN
    # without an amount column), and features each row's typed cells by column, for the model's examples;
    # times_read, each row's time cell as it was read (an ISO date-time stays one in what predict writes).
    features: list[dict] | None = None
    times_read: list[str] | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def split(self, size: int) -> Iterator["Batch"]:
        for start in range(0, len(self), size):
            end = start + size
            labels = self.labels[start:end] if self.labels is not None else None
            keys = self.keys[start:end] if self.keys is not None else None
            features = self.features[start:end] if self.features is not None else None
            read = self.times_read[start:end] if self.times_read is not None else None
            yield Batch(
                self.files[start:end], self.lines[start:end], self.values[start:end], labels, keys, features, read
            )


class Rejects:
    """Where bad rows go with --rejects: the row as it was, its file and line, and why."""

    def __init__(self, path: str | None, gz: bool = False):
        """path: the file to write (None: a bad row is an error); gz: compress it (its final name ends in .gz)."""
        self.count = 0
        self._file = open_text(path, "w", gz=gz) if path else None
        if self._file is not None:
            # A file name that is not UTF-8 (bytes the file system allows) is written with its bytes escaped.
            self._file.reconfigure(errors="backslashreplace")
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


def _fast_batches(file: str, header: list[str], label: int | None, key: str | None) -> Iterator[Batch]:
    """A clean file's rows, parsed by Arrow a block at a time (components.lib.csv_contract.arrow_blocks).

    It only takes what it can judge exactly: every feature a finite number, the label 0, 1 or empty, no blank
    line, so that row i is line i + 2. Anything else raises FastReaderRefusedError with the rows it already gave, and
    the careful reader takes over from there, to name the line and column or set the row aside.
    """
    columns = list(FEATURES) + ([contract.LABEL] if label is not None else [])
    done = 0
    with csv_contract.refusals(file, lambda: done):
        blocks = csv_contract.arrow_blocks(
            file, header, columns + ([key] if key else []), keep_blank_lines=True, text_columns=[key] if key else []
        )
        for block in blocks:
            values = np.column_stack([block.column(name).to_numpy(zero_copy_only=False) for name in FEATURES])
            labels = None
            if label is not None:
                labels = block.column(contract.LABEL).to_numpy(zero_copy_only=False)
                known = np.isnan(labels) | (labels == 0) | (labels == 1)
                if not known.all():
                    raise FastReaderRefusedError(f"{file}: a {contract.LABEL} that is not 0 or 1", done)
            if not np.isfinite(values).all():
                raise FastReaderRefusedError(f"{file}: a feature that is not a finite number", done)
            keys = block.column(key).to_pylist() if key else None
            if keys is not None and any(k is None or k == "" for k in keys):
                raise FastReaderRefusedError(f"{file}: an empty {key}", done)
            lines = np.arange(done + 2, done + 2 + len(values))
            normalized = _normalized(labels) if labels is not None else None
            yield Batch([file] * len(values), lines, values, normalized, keys)
            done += len(values)


def _careful_rows(file: str, header: list[str], columns, rejects: Rejects, skip: int) -> Iterator[tuple]:
    """(line, values, label cell, key) of each good row after the first skip rows, in Python; bad rows to rejects."""
    indices, label, key = columns
    for line, cells in csv_contract.careful_rows(file):
        if skip:
            skip -= 1
            continue
        problem = csv_contract.scoring_problem(cells, len(header), indices, label)
        if problem is None and key is not None and not cells[key].strip():
            problem = f"column {header[key]}: the key is empty"
        if problem:
            rejects.add(file, line, problem, cells)
            continue
        yield (
            line,
            [float(cells[i]) for i in indices],
            _normalized([csv_contract.label(cells[label])])[0] if label is not None else "",
            cells[key] if key is not None else None,
        )


def _careful_batches(file, header, columns, rejects, skip: int, size: int) -> Iterator[Batch]:
    rows = []
    for row in _careful_rows(file, header, columns, rejects, skip):
        rows.append(row)
        if len(rows) == size:
            yield _batch(file, rows, columns)
            rows = []
    if rows:
        yield _batch(file, rows, columns)


def _batch(file: str, rows: list[tuple], columns) -> Batch:
    _, label, key = columns
    lines, values, labels, keys = zip(*rows)
    return Batch(
        [file] * len(rows),
        np.array(lines),
        np.array(values),
        list(labels) if label is not None else None,
        list(keys) if key is not None else None,
    )


def headers(files: Iterable[str], key: str | None = None) -> dict[str, list[str]]:
    """Each file's header, checked against the contract (DataRejectedError naming the file otherwise)."""
    found = {file: csv_contract.read_header(file) for file in files}
    for file, header in found.items():
        csv_contract.scoring_columns(file, header, key)
    return found


def batches(
    files: Iterable[str],
    rejects: Rejects,
    size: int = BATCH_SIZE,
    checked: dict | None = None,
    key: str | None = None,
) -> Iterator[Batch]:
    """The good rows of the files in input order, in batches of at most size; bad rows to rejects (or an error).

    checked: the files' headers from headers(), when the caller has read them already.
    key: a column passed through with each row (a transaction id), the only extra column the contract then takes.
    """
    for file in files:
        header = checked[file] if checked else csv_contract.read_header(file)
        columns = csv_contract.scoring_columns(file, header, key)
        try:
            for block in _fast_batches(file, header, columns[1], key):
                yield from block.split(size)
        except FastReaderRefusedError as refused:
            yield from _careful_batches(file, header, columns, rejects, refused.rows_done, size)


class ExampleEncoder:
    """Serializes rows of the float features as tf.Example protos, a whole batch at once with numpy.

    Each feature is a map entry of fixed size (its name, then one float in a FloatList), so a serialized example is
    the same bytes for every row but for the 4 bytes of each value: they are filled in column by column. It parses
    to the same features as a tf.train.Example built field by field (a test checks it), at a fraction of the cost.
    """

    def __init__(self, names=FEATURES):
        self._np = np
        body, self._slots = b"", []
        for name in names:
            key = name.encode()
            feature = b"\x12\x06\x0a\x04"  # Feature.float_list (6 bytes): FloatList.value, packed, one float
            entry = b"\x0a" + varint(len(key)) + key + b"\x12" + varint(len(feature) + 4) + feature
            prefix = b"\x0a" + varint(len(entry) + 4) + entry  # one entry of Features.feature
            self._slots.append(len(body) + len(prefix))
            body += prefix + bytes(4)
        head = b"\x0a" + varint(len(body))  # Example.features
        self._slots = [len(head) + slot for slot in self._slots]
        self._template = np.frombuffer(head + body, np.uint8)

    def encode(self, values) -> list[bytes]:
        np = self._np
        floats = np.ascontiguousarray(values, dtype="<f4")
        rows = np.tile(self._template, (len(floats), 1))
        for column, slot in enumerate(self._slots):
            rows[:, slot : slot + 4] = floats[:, column : column + 1].view(np.uint8)
        return [row.tobytes() for row in rows]


# -- a dataset of another spec -------------------------------------------------------------------------------------


def spec_headers(files: Iterable[str], spec: DatasetSpec, key: str | None = None) -> dict[str, list[str]]:
    """Each file's header, checked against the spec: the time, the model's features (but the history ones, which
    the online store computes) and the history's entities required; the label, the spec's key and other entities (and
    --key) optional; nothing else (DataRejectedError naming the file otherwise)."""
    entities = [item.entity for item in spec.history if item.entity not in spec.input_features]
    required = [spec.time, *spec.input_features, *dict.fromkeys(entities)] + ([key] if key else [])
    optional = [spec.label, *(e for e in spec.entities if e not in entities)] + ([spec.key] if spec.key else [])
    found = {}
    for file in files:
        header = csv_contract.read_header(file)
        problems = csv_contract.header_problems(header, required, optional, what=f"the dataset spec {spec.name!r}")
        if problems:
            raise DataRejectedError(f"{file}, line 1 (header): {'; '.join(problems)}")
        found[file] = header
    return found


def _spec_row(spec: DatasetSpec, header: list[str], cells: list[str], key: str | None):
    """(typed features by column, label cell '0'/'1'/'', key, time, amount, the time cell) of a row, or a reason it
    is refused."""
    if len(cells) != len(header):
        return f"{len(cells)} fields where the header has {len(header)}"
    features, label, time, time_cell = {}, "", None, ""
    for name, cell in zip(header, cells):
        cell = cell.strip()
        if name == spec.label:
            if cell:
                value = spec.label_of(cell)
                if value is None:
                    return f"column {name}: {cell[:40]!r} is neither {spec.positive!r} nor a negative value"
                label = str(value)
            continue
        if not cell:
            if name == spec.time or not spec.may_be_missing(name) and name in spec.model_features:
                return f"column {name}: empty, and the dataset spec does not let it be missing"
            continue
        value = spec.value_of(name, cell)
        if value is None:
            return f"column {name}: {cell[:40]!r} is not a {spec.example_kind(name)}"
        features[name] = value
        if name == spec.time:
            time, time_cell = float(value), cell
    row_key = cells[header.index(key)] if key else None
    if key is not None and not (row_key or "").strip():
        return f"column {key}: the key is empty"
    amount = features.get(spec.amount, math.nan) if spec.amount else math.nan
    return features, label, row_key, time, float(amount), time_cell


def spec_batches(
    files: Iterable[str],
    rejects: Rejects,
    spec: DatasetSpec,
    size: int = BATCH_SIZE,
    checked: dict | None = None,
    key: str | None = None,
) -> Iterator[Batch]:
    """The good rows of the files of a dataset of this spec, in input order, a row at a time through Python's csv
    module (the fast reader takes numbers only); bad rows to rejects (or an error naming the file and line)."""
    for file in files:
        header = checked[file] if checked else csv_contract.read_header(file)
        labelled = spec.label in header
        rows = []
        for line, cells in csv_contract.careful_rows(file):
            row = _spec_row(spec, header, cells, key)
            if isinstance(row, str):
                rejects.add(file, line, row, cells)
                continue
            rows.append((line, *row))
            if len(rows) == size:
                yield _spec_batch(file, rows, labelled, key)
                rows = []
        if rows:
            yield _spec_batch(file, rows, labelled, key)


def _spec_batch(file: str, rows: list[tuple], labelled: bool, key: str | None) -> Batch:
    lines, features, labels, keys, times, amounts, times_read = zip(*rows)
    return Batch(
        [file] * len(rows),
        np.array(lines),
        np.column_stack([np.array(times, dtype=np.float64), np.array(amounts, dtype=np.float64)]),
        list(labels) if labelled else None,
        list(keys) if key is not None else None,
        list(features),
        list(times_read),
    )
