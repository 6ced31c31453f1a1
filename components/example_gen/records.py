"""CSV files to serialized tf.Examples in Beam, typed by the feature contract, the fast way or the careful way.

Fast: Arrow parses a block of rows at a time (components.lib.csv_contract.arrow_blocks), tfx_bsl's C++ encoder turns it
into tf.Examples; it takes well-formed files only and raises FastReaderRefusedError at the first thing it does not
accept. Careful: Python's csv module a row at a time, a column that does not parse as its contract type kept as
bytes (so the ExampleValidator names it), a broken row named by file and line.
"""

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tfx_bsl.coders import example_coder

import contract
from components.example_gen.history import AddHistory
from components.example_gen.inputs import context_files, dataset, input_files
from components.lib import csv_contract
from components.lib.rejection import DataRejectedError
from datasets.spec import BYTES, FLOAT, INT, DatasetSpec

_FLOAT, _INT, _BYTES = "float", "int", "bytes"
# Time values an element of the reader's times_only output.
_TIMES_A_LIST = 1 << 16
# gzip's level for the written records: faster than Beam's 6 for somewhat larger files (docs/benchmarks.md).
GZIP_LEVEL = 1
# Rows a block of the careful reader's output (the fast reader's blocks are Arrow's).
_CAREFUL_BLOCK_ROWS = 4096


def contract_type(column: str, spec: DatasetSpec = contract.DEFAULT_DATASET) -> str:
    """How the spec stores a column in a tf.Example: 'float', 'int' or 'bytes'."""
    return spec.example_kind(column)


class CellReader:
    """A cell of a column as the spec stores it (DatasetSpec.value_of: the label as 0/1, an ISO time as epoch
    seconds), or as the kind the careful reader found the column to be (text where a cell did not parse)."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec

    def value(self, column: str, kind: str, cell: str):
        if kind == _BYTES:
            return cell
        if column in self._spec.columns:
            return self._spec.value_of(column, cell)
        return csv_contract.integer(cell) if kind == _INT else float(cell)

    def parses(self, column: str, kind: str, cell: str) -> bool:
        if cell == "":
            return True  # A missing value; the schema's presence rules judge it.
        try:
            return self.value(column, kind, cell) is not None
        except ValueError:
            return False


def _list_column(column: pa.Array) -> pa.ListArray:
    """One value per row -> a list per row: [value], or [] where the cell was empty (as the careful reader does)."""
    present = column.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(column) + 1, dtype=np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), column.drop_null())


def _text(column: pa.Array) -> pa.Array:
    """A text column with its empty cells null (the careful reader leaves an empty cell out of the example)."""
    import pyarrow.compute as pc

    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _iso_seconds(column: pa.Array, name: str) -> pa.Array:
    """ISO-8601 date-times of the plainest form ('2026-04-01T08:15:00', a space for the T, a Z after) as whole
    seconds since the Unix epoch (UTC), as DatasetSpec.time_of reads them; any other form (an offset, fractions of
    a second, another layout) refuses the block, so the careful reader reads it as time_of does."""
    import pyarrow.compute as pc

    text = _text(pc.utf8_trim_whitespace(column))
    present = text.drop_null().to_numpy(zero_copy_only=False).astype(str)
    present = np.char.rstrip(present, "Zz")
    if len(present) and not (
        np.all(np.char.str_len(present) == 19) and np.all(np.isin([t[10] for t in present], ("T", " ")))
    ):
        raise ValueError(f"a {name} that is not a plain ISO-8601 date-time")
    seconds = present.astype("datetime64[s]").astype(np.int64)
    out = np.zeros(len(text), dtype=np.int64)
    valid = text.is_valid().to_numpy(zero_copy_only=False)
    out[valid] = seconds
    return pa.array(out, mask=~valid)


def _label(column: pa.Array, spec: DatasetSpec) -> pa.Array:
    """A text label as 0/1 by the spec's values (exactly, once trimmed); any other value refuses the block, so the
    careful reader judges it as DatasetSpec.label_of does."""
    import pyarrow.compute as pc

    text = _text(pc.utf8_trim_whitespace(column))
    positive = pc.equal(text, spec.positive)
    negative = pc.is_in(text, value_set=pa.array(list(spec.negative), pa.string()))
    known = pc.or_(positive, negative)
    if not spec.negative or not pc.all(pc.or_(pc.invert(text.is_valid()), known)).as_py():
        raise ValueError(f"a {spec.label} that is neither {spec.positive!r} nor a negative value")
    return pc.if_else(positive, 1, 0).cast(pa.int64())


def _whole(column: pa.Array, name: str) -> pa.Array:
    """Numbers that must be whole (an integer label or category) as int64; a fraction refuses the block."""
    values = column.drop_null().to_numpy()
    if not np.all(np.floor(values) == values) or (len(values) and np.abs(values).max() >= 2**53):
        raise ValueError(f"a {name} that is not a whole number")
    return column.cast(pa.int64())


def _fast_block(batch: pa.RecordBatch, spec: DatasetSpec) -> pa.RecordBatch:
    """Arrow columns (numbers as float64, text as strings: _text_columns) -> the spec's kinds as list columns: float32
    features, int64 label and integers, bytes for text, ISO times as int64 seconds; an empty cell an empty list."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns):
        kind = spec.example_kind(name) if name in spec.columns else FLOAT
        if name == spec.label:
            column = _whole(column, name) if spec.label_is_integer else _label(column, spec)
        elif name == spec.time and spec.time_format != "seconds":
            column = _iso_seconds(column, name)
        elif kind == BYTES:
            column = _text(column).cast(pa.binary())
        elif kind == INT:
            column = _whole(column, name)
        else:
            # float64 -> float32 rounds to nearest, as storing Python's float() in a float_list does.
            column = column.cast(pa.float32(), safe=False)
        columns.append(_list_column(column))
    return pa.RecordBatch.from_arrays(columns, batch.schema.names)


def _text_columns(spec: DatasetSpec, names: list[str]) -> list[str]:
    """The columns Arrow reads as text: ids and categories, a text label, an ISO time."""
    text = []
    for name in names:
        if name not in spec.columns:
            continue
        if name == spec.label:
            text += [] if spec.label_is_integer else [name]
        elif name == spec.time:
            text += [] if spec.time_format == "seconds" else [name]
        elif spec.example_kind(name) == BYTES:
            text.append(name)
    return text


def fast_blocks(
    path: str, names: list[str], spec: DatasetSpec = contract.DEFAULT_DATASET
) -> Iterator[tuple[list[float | None], list[bytes]]]:
    """(the rows' Time values, their serialized tf.Examples) for each block of a well-formed CSV file: one element
    per block, not per row, for the Beam steps after the reader (a row's Time is None where it has none). Text
    columns, text labels, ISO times and empty cells included (as the careful reader writes them).

    Raises:
      FastReaderRefusedError: the file is not one this reader accepts (a broken row, a number column holding text,
        a fractional or unknown label, a date-time of another form, bytes that are not UTF-8, a truncated gzip
        file); the careful reader says what and where.
    """
    time_index = names.index(spec.time) if spec.time in names else None
    encoder = example_coder.RecordBatchToExamplesEncoder()
    with csv_contract.refusals(path):
        for batch in csv_contract.arrow_blocks(path, names, names, text_columns=_text_columns(spec, names)):
            block = _fast_block(batch, spec)
            times = [None] * batch.num_rows if time_index is None else _block_times(block.column(time_index))
            yield times, encoder.encode(block)


def _block_times(column: pa.Array) -> list[float | None]:
    """A block's Time column (a list a row) as one value a row, None where a row has none: flattened at once where
    every row has exactly one: a list of floats, not of one-value lists, is much faster to make (docs/benchmarks.md,
    "The Trainer's read and sort, ExampleGen's Time column and framing")."""
    lengths = pc.list_value_length(column)
    if column.null_count == 0 and pc.all(pc.equal(lengths, 1), skip_nulls=False).as_py():
        return column.flatten().to_pylist()
    return [time[0] if time else None for time in column.to_pylist()]


def fast_records(
    path: str, names: list[str], spec: DatasetSpec = contract.DEFAULT_DATASET
) -> Iterator[tuple[float | None, bytes]]:
    """(Time, serialized tf.Example) for each row of a well-formed CSV file (fast_blocks, a row at a time)."""
    for times, records in fast_blocks(path, names, spec):
        yield from zip(times, records)


def fast_times(path: str, names: list[str], spec: DatasetSpec = contract.DEFAULT_DATASET) -> Iterator[float]:
    """The time of every row that has one, as fast_records gives it (float32 seconds, or whole seconds of an ISO
    time), reading that column alone."""
    if spec.time not in names:
        return
    with csv_contract.refusals(path):
        for batch in csv_contract.arrow_blocks(path, names, [spec.time], text_columns=_text_columns(spec, names)):
            column = batch.column(0)
            if spec.time_format != "seconds":
                yield from _iso_seconds(column, spec.time).drop_null().to_pylist()
            else:
                yield from column.drop_null().cast(pa.float32(), safe=False).to_pylist()


class ReadCsvRows(beam.DoFn):
    """Reads one CSV file (compression from its extension) into lists of cells, the careful way."""

    def __init__(self, num_columns: int, label_index: int | None):
        self._num_columns = num_columns
        self._label_index = label_index

    def process(self, path: str) -> Iterable[list[str]]:
        yield from csv_contract.checked_rows(path, self._num_columns, self._label_index)


class _ReadCsvRecords(beam.DoFn):
    """Reads one CSV file with the fast reader into blocks of (Time values, serialized tf.Examples), or into lists of
    its Time values alone."""

    def __init__(self, names: list[str], spec: DatasetSpec, times_only: bool = False):
        self._names = names
        self._spec = spec
        self._times_only = times_only

    def process(self, path: str) -> Iterable[Any]:
        if self._times_only:
            # A list a block, as fast_blocks has them (Beam's quantiles take them batched).
            times = []
            for time in fast_times(path, self._names, self._spec):
                times.append(time)
                if len(times) == _TIMES_A_LIST:
                    yield times
                    times = []
            if times:
                yield times
        else:
            yield from fast_blocks(path, self._names, self._spec)


class ColumnsParse(beam.CombineFn):
    """For each column: do all its cells parse as its contract type?"""

    def __init__(self, names: list[str], kinds: list[str], spec: DatasetSpec):
        self._names = names
        self._kinds = kinds
        self._cells = CellReader(spec)

    def create_accumulator(self):
        return [True] * len(self._kinds)

    def add_input(self, acc, cells):
        parses = self._cells.parses
        return [ok and parses(name, kind, cell) for ok, name, cell, kind in zip(acc, self._names, cells, self._kinds)]

    def merge_accumulators(self, accs):
        return [all(oks) for oks in zip(*accs)]

    def extract_output(self, acc):
        return [kind if ok else _BYTES for ok, kind in zip(acc, self._kinds)]


def to_example(
    cells: list[str], names: list[str], kinds: list[str], spec: DatasetSpec = contract.DEFAULT_DATASET
) -> tf.train.Example:
    """One row as a tf.Example: each cell as the kind its column parsed as (ColumnsParse), an empty cell absent."""
    example = tf.train.Example()
    read = CellReader(spec).value
    for name, kind, cell in zip(names, kinds, cells):
        feature = example.features.feature[name]
        if kind == _FLOAT:
            feature.float_list.value.extend([read(name, kind, cell)] if cell else [])
        elif kind == _INT:
            feature.int64_list.value.extend([read(name, kind, cell)] if cell else [])
        else:
            feature.bytes_list.value.extend([cell.encode()] if cell else [])
    return example


def timed_record(example: tf.train.Example, time: str = contract.TIME) -> tuple[float | None, bytes]:
    """(the row's time, float or integer seconds, or None; the serialized example)."""
    feature = example.features.feature[time]
    values = feature.float_list.value or feature.int64_list.value
    return (values[0] if values else None), example.SerializeToString(deterministic=True)


def _kept(block: tuple[list, list[bytes]], keep: bool) -> tuple[list[bytes], bool]:
    """A block's serialized examples, with whether they are kept (not an older span's history)."""
    return block[1], keep


def records_of(block: tuple[list[float | None], list[bytes]]) -> list[bytes]:
    """The serialized tf.Examples of a block."""
    return block[1]


def _block(pairs: list[tuple[float | None, bytes]]) -> tuple[list[float | None], list[bytes]]:
    return [time for time, _ in pairs], [record for _, record in pairs]


class CsvToTimedRecords(beam.PTransform):
    """Reads CSV files into blocks of rows typed by the feature contract: (Time values, serialized tf.Examples), a
    row's Time None where it has none. The steps after the reader take a block at a time, not a row.

    careful: read with Python's csv module a row at a time instead of the fast reader.
    times_only: the fast reader's Time values alone (lists of floats), for the time split's cuts.
    context: files read only as the history of the others' rows (older spans), when the spec has a history
      section: the rows of `files` get their history features (components/example_gen/history.py).
    """

    def __init__(
        self,
        files: list[str],
        careful: bool,
        times_only: bool = False,
        spec: DatasetSpec = contract.DEFAULT_DATASET,
        context: list[str] = (),
    ):
        super().__init__()
        self._files = list(files)
        self._careful = careful
        self._times_only = times_only
        self._spec = spec
        self._context = [f for f in context if f not in set(files)]

    def expand(self, pipeline):
        files, spec = self._files, self._spec
        names = csv_contract.read_header(files[0])
        # Every file read here, also a span outside the window the executor checked (the previous one, with a window
        # of 1): the spec's columns once each (tfx_bsl's encoder fails on a column named twice).
        problems = csv_contract.header_problems(names, spec.columns)
        if problems:
            raise DataRejectedError(f"{files[0]}, line 1 (header): {'; '.join(problems)}")
        for path in [*files[1:], *self._context]:
            if csv_contract.read_header(path) != names:
                raise DataRejectedError(f"{path}: its header differs from the header of {files[0]}")
        paths = pipeline | "Files" >> beam.Create(files) | "Reshuffle" >> beam.Reshuffle()
        if not self._careful:
            blocks = paths | "ReadRecords" >> beam.ParDo(_ReadCsvRecords(names, spec, self._times_only))
            if not spec.history or self._times_only:
                return blocks
            kept = blocks | "Kept" >> beam.Map(_kept, True)
            older = (
                pipeline
                | "ContextFiles" >> beam.Create(self._context)
                | "ReadContext" >> beam.ParDo(_ReadCsvRecords(names, spec))
                | "Context" >> beam.Map(_kept, False)
            )
            return self._with_history(kept, older)
        label_index = names.index(spec.label) if spec.label in names else None
        rows = paths | "ReadRows" >> beam.ParDo(ReadCsvRows(len(names), label_index))
        kinds = beam.pvalue.AsSingleton(
            rows
            | "ColumnTypes" >> beam.CombineGlobally(ColumnsParse(names, [contract_type(n, spec) for n in names], spec))
        )
        blocks = self._blocks(rows | "ToExample" >> beam.Map(to_example, names, kinds, spec), "")
        if not spec.history:
            return blocks
        older = (
            pipeline
            | "ContextFiles" >> beam.Create(self._context)
            | "ReadContext" >> beam.ParDo(ReadCsvRows(len(names), label_index))
            | "ContextToExample" >> beam.Map(to_example, names, kinds, spec)
        )
        older = self._blocks(older, "Context") | "Context" >> beam.Map(_kept, False)
        return self._with_history(blocks | "Kept" >> beam.Map(_kept, True), older)

    def _with_history(self, kept, older):
        """The kept blocks with their rows' history windows, the older spans' rows as history
        (components/example_gen/history.py)."""
        return (kept, older) | "WithContext" >> beam.Flatten() | "History" >> AddHistory(self._spec)

    def _blocks(self, examples, prefix: str):
        return (
            examples
            | f"{prefix}Serialize" >> beam.Map(timed_record, self._spec.time)
            | f"{prefix}Blocks"
            >> beam.BatchElements(min_batch_size=_CAREFUL_BLOCK_ROWS, max_batch_size=_CAREFUL_BLOCK_ROWS)
            | f"{prefix}Block" >> beam.Map(_block)
        )


class CsvToRecords(beam.PTransform):
    """The serialized tf.Examples alone, one an element (for TFX's hash split, which partitions them one by one:
    its signature is (exec_properties, pattern))."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str, careful: bool):
        super().__init__()
        files = input_files(exec_properties, split_pattern)
        spec = dataset(exec_properties)
        self._timed = CsvToTimedRecords(files, careful, spec=spec, context=context_files(exec_properties, files, spec))

    def expand(self, pipeline):
        return pipeline | "Read" >> self._timed | "Records" >> beam.FlatMap(records_of)
