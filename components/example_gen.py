"""CsvExampleGen for the fraud data: plain or gzip CSV, a fixed feature contract, and time-ordered splits.

TFX's stock CsvExampleGen infers each column's type from the values it sees, so a
column that happens to hold only whole numbers (``Time`` always does) becomes INT
and then disagrees with the schema. This one types the columns by the feature
contract instead: the raw features are floats and the label an integer. A column
whose values do not all parse as its contract type is written as bytes, so the
ExampleValidator reports it against the schema rather than the reader crashing.

The split scheme comes from ``custom_config`` (``{"split": "time"|"random"}``);
the shares of the splits come from the hash buckets of ``output_config`` in both
schemes. ``random`` is TFX's hash split; ``time`` orders the rows by ``Time`` and
cuts at its quantiles, so every later split holds only later transactions.

Two readers give the same examples. The fast one (Arrow's CSV parser, then
tfx_bsl's C++ encoder, a block of rows at a time) takes well-formed files: every
row complete, every cell a number or empty, whole-number labels. At the first
thing it does not accept it stops, and the executor runs again with the careful
reader (Python's csv module, a row at a time), which keeps a non-numeric column as
bytes and names the file and line of a broken row.
"""

import contextlib
import csv
import dataclasses
import functools
import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.protobuf import json_format, struct_pb2
from pyarrow import csv as pa_csv
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, channel, standard_artifacts, standard_component_specs
from tfx_bsl.coders import example_coder

import contract
from components import serving, spans
from components.rejection import DataRejectedError

_FLOAT, _INT, _BYTES = "float", "int", "bytes"
# Spreadsheet tools often start a UTF-8 CSV with a byte order mark; it is not part of the first column's name.
_BOM = "\ufeff"
# Enough quantiles that a cut lands within 0.1% of its target share.
_NUM_QUANTILES = 1001
# Bytes of CSV text the fast reader parses at a time (about 20,000 rows of this data).
_FAST_BLOCK_BYTES = 4 << 20


def split_custom_config(
    split: str, code_version: str = "", span_pattern: str = "", window: int = 0
) -> example_gen_pb2.CustomConfig:
    """Packs the split scheme, and the span pattern and window of spanned input, into the CustomConfig.

    span_pattern: a pattern with {SPAN} or a date (components.spans), relative to the input base; '' when the
      input is one file or a flat folder. window: how many of the newest spans to read (0: all).
    code_version (the fingerprint of this reader's code) is carried only so that a change to the code changes
    the component's cache key and re-runs it.
    """
    if split not in contract.SPLIT_SCHEMES:
        raise ValueError(f"unknown split scheme {split!r}; expected one of {contract.SPLIT_SCHEMES}")
    if span_pattern:
        spans.check(span_pattern)
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    fields = {
        "split": struct_pb2.Value(string_value=split),
        "code_version": struct_pb2.Value(string_value=code_version),
        "span_pattern": struct_pb2.Value(string_value=span_pattern),
        "window": struct_pb2.Value(number_value=window),
    }
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct_pb2.Struct(fields=fields))
    return config


def _custom_fields(exec_properties: dict[str, Any]) -> dict[str, Any]:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {}
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    return json_format.MessageToDict(struct)


def _split_scheme(exec_properties: dict[str, Any]) -> str:
    return _custom_fields(exec_properties).get("split") or "random"


@dataclasses.dataclass(frozen=True)
class SpanSelection:
    """What a run of spanned input reads: the window's spans (oldest first) and the span before the newest."""

    pattern: str
    window: list[spans.Span]
    previous: spans.Span | None

    @property
    def newest(self) -> spans.Span:
        return self.window[-1]

    def files(self) -> list[str]:
        return [f for span in self.window for f in span.files]


# Where the executor keeps the run's span selection among the exec properties (as TFX keeps its Beam args there).
_SELECTION_KEY = "_span_selection"


def select_spans(exec_properties: dict[str, Any]) -> SpanSelection | None:
    """The spans this run reads (None for input without spans), found once and kept in exec_properties.

    Raises:
      DataRejectedError: no file matches the span pattern, or the pattern cannot be used.
    """
    if _SELECTION_KEY in exec_properties:
        return exec_properties[_SELECTION_KEY]
    fields = _custom_fields(exec_properties)
    pattern = fields.get("span_pattern") or ""
    selection = None
    if pattern:
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        try:
            found = spans.find(base, pattern, fileio.glob(f"{base}/{spans.glob_of(pattern)}"))
        except spans.SpanPatternError as e:
            raise DataRejectedError(f"{base}: {e}") from e
        if not found:
            raise DataRejectedError(f"no span matches {base}/{pattern}")
        window = spans.newest(found, int(fields.get("window") or 0))
        selection = SpanSelection(pattern, window, found[-2] if len(found) > 1 else None)
    exec_properties[_SELECTION_KEY] = selection
    return selection


@contextlib.contextmanager
def _binary_stream(path: str):
    """The file's bytes, decompressed when its name ends in .gz (by Python's gzip module: Beam's own gzip reading
    stops quietly at a truncated end, Python's says so)."""
    gz = path.endswith(".gz")
    compression = CompressionTypes.UNCOMPRESSED if gz else CompressionTypes.AUTO
    with FileSystems.open(path, compression_type=compression) as raw:
        yield gzip.GzipFile(fileobj=raw) if gz else raw


def text_lines(path: str) -> Iterator[str]:
    """The lines of a CSV file as text, plain or gzip (by its extension), without a leading byte order mark.

    Raises:
      DataRejectedError: a gzip file that is truncated or corrupt, or bytes that are not UTF-8, naming the file
        and the line.
    """
    number = 0
    with _binary_stream(path) as stream:
        try:
            for number, line in enumerate(iter(stream.readline, b""), start=1):
                text = line.decode("utf-8")
                yield text.removeprefix(_BOM) if number == 1 else text
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataRejectedError(
                f"{path} is not a complete gzip file (it breaks off after line {number}: {e}); "
                "download or compress it again"
            ) from e
        except UnicodeDecodeError as e:
            raise DataRejectedError(
                f"{path}, line {number}: not UTF-8 text ({e.reason}); save the file as UTF-8 CSV"
            ) from e


def _read_header(path: str) -> list[str]:
    with contextlib.closing(text_lines(path)) as lines:
        first = next(lines, "")
    if not first.strip():
        raise DataRejectedError(
            f"{path} is empty: a CSV file starts with the header line ({','.join(contract.RAW_COLUMNS[:3])},...) "
            "and holds one row per transaction"
        )
    return next(csv.reader([first]))


def _contract_type(column: str) -> str:
    if column == contract.LABEL:
        return _INT
    return _FLOAT


def _integer(cell: str) -> int | None:
    """The cell as an integer, also when written as an integral float ('1.0', as pandas writes it); else None."""
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _parses(cell: str, kind: str) -> bool:
    if cell == "":
        return True  # A missing value; the schema's presence rules judge it.
    if kind == _INT:
        return _integer(cell) is not None
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_label(cell: str, path: str, line: int) -> None:
    """A label that is a number but not a whole one (0.5) is refused here, where the line is known."""
    try:
        value = float(cell)
    except ValueError:
        return  # Text: the column is kept as bytes and the ExampleValidator names it.
    if value == value and not value.is_integer():
        raise DataRejectedError(f"{path}, line {line}: {contract.LABEL} is {cell!r}; it must be 0 or 1")


class _ReadCsvRows(beam.DoFn):
    """Reads one CSV file (compression from its extension) into lists of cells."""

    def __init__(self, num_columns: int, label_index: int | None):
        self._num_columns = num_columns
        self._label_index = label_index

    def process(self, path: str) -> Iterable[list[str]]:
        reader = csv.reader(text_lines(path))
        next(reader, None)
        for cells in reader:
            if not cells:
                continue
            if len(cells) != self._num_columns:
                raise DataRejectedError(
                    f"{path}, line {reader.line_num}: {len(cells)} fields where the header has {self._num_columns}; "
                    "every row needs one value per column"
                )
            if self._label_index is not None and cells[self._label_index]:
                _check_label(cells[self._label_index], path, reader.line_num)
            yield cells


class FastReaderRefusedError(Exception):
    """The fast reader met something it does not accept; the careful reader must read the input instead."""


def _list_column(column: pa.Array) -> pa.ListArray:
    """One value per row -> a list per row: [value], or [] where the cell was empty (as the careful reader does)."""
    present = column.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(column) + 1, dtype=np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), column.drop_null())


def _fast_block(batch: pa.RecordBatch, label_index: int | None) -> pa.RecordBatch:
    """Arrow columns parsed as float64 -> the contract's types as list columns: float32 features, int64 label."""
    columns = []
    for index, column in enumerate(batch.columns):
        if index == label_index:
            values = column.drop_null().to_numpy()
            if not np.all(np.floor(values) == values):
                raise ValueError(f"a {contract.LABEL} that is not a whole number")
            column = column.cast(pa.int64())
        else:
            # float64 -> float32 rounds to nearest, as storing Python's float() in a float_list does.
            column = column.cast(pa.float32(), safe=False)
        columns.append(_list_column(column))
    return pa.RecordBatch.from_arrays(columns, batch.schema.names)


def _fast_blocks(path: str, names: list[str], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The file's rows as Arrow record batches of float64 columns (only `columns` of them), a block at a time."""
    with _binary_stream(path) as stream:
        stream.readline()  # the header, read already (with its byte order mark, if any)
        yield from pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=_FAST_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.float64() for name in names},
                include_columns=columns,
                null_values=[""],
                quoted_strings_can_be_null=False,
            ),
        )


@contextlib.contextmanager
def _refusals(path: str):
    """What the fast reader does not accept becomes FastReaderRefusedError, naming the file."""
    try:
        yield
    except (pa.ArrowException, EOFError, OSError, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise FastReaderRefusedError(f"{path}: {e}") from e


def fast_records(path: str, names: list[str]) -> Iterator[tuple[float | None, bytes]]:
    """(Time, serialized tf.Example) for each row of a well-formed CSV file, a block of rows at a time.

    Raises:
      FastReaderRefusedError: the file is not one this reader accepts (a broken row, a cell that is not a number, a
        fractional label, bytes that are not UTF-8, a truncated gzip file); the careful reader says what and where.
    """
    label_index = names.index(contract.LABEL) if contract.LABEL in names else None
    time_index = names.index(contract.TIME) if contract.TIME in names else None
    encoder = example_coder.RecordBatchToExamplesEncoder()
    with _refusals(path):
        for batch in _fast_blocks(path, names, names):
            block = _fast_block(batch, label_index)
            times = [None] * batch.num_rows if time_index is None else block.column(time_index).to_pylist()
            for time, record in zip(times, encoder.encode(block)):
                yield (time[0] if time else None), record


def fast_times(path: str, names: list[str]) -> Iterator[float]:
    """The Time of every row that has one, as fast_records gives it (float32), reading that column alone."""
    if contract.TIME not in names:
        return
    with _refusals(path):
        for batch in _fast_blocks(path, names, [contract.TIME]):
            yield from batch.column(0).drop_null().cast(pa.float32(), safe=False).to_pylist()


class _ReadCsvRecords(beam.DoFn):
    """Reads one CSV file with the fast reader into (Time, serialized tf.Example), or its Time values alone."""

    def __init__(self, names: list[str], times_only: bool = False):
        self._names = names
        self._times_only = times_only

    def process(self, path: str) -> Iterable[Any]:
        yield from (fast_times if self._times_only else fast_records)(path, self._names)


class _ColumnsParse(beam.CombineFn):
    """For each column: do all its cells parse as its contract type?"""

    def __init__(self, kinds: list[str]):
        self._kinds = kinds

    def create_accumulator(self):
        return [True] * len(self._kinds)

    def add_input(self, acc, cells):
        return [ok and _parses(cell, kind) for ok, cell, kind in zip(acc, cells, self._kinds)]

    def merge_accumulators(self, accs):
        return [all(oks) for oks in zip(*accs)]

    def extract_output(self, acc):
        return [kind if ok else _BYTES for ok, kind in zip(acc, self._kinds)]


def _to_example(cells: list[str], names: list[str], kinds: list[str]) -> tf.train.Example:
    example = tf.train.Example()
    for name, kind, cell in zip(names, kinds, cells):
        feature = example.features.feature[name]
        if kind == _FLOAT:
            feature.float_list.value.extend([float(cell)] if cell else [])
        elif kind == _INT:
            feature.int64_list.value.extend([_integer(cell)] if cell else [])
        else:
            feature.bytes_list.value.extend([cell.encode()] if cell else [])
    return example


def _timed_record(example: tf.train.Example) -> tuple[float | None, bytes]:
    values = example.features.feature[contract.TIME].float_list.value
    return (values[0] if values else None), example.SerializeToString(deterministic=True)


def input_files(exec_properties: dict[str, Any], split_pattern: str) -> list[str]:
    """The CSV files a run reads: the window's spans for spanned input, else what the input pattern matches."""
    selection = select_spans(exec_properties)
    if selection is not None:
        return selection.files()
    pattern = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/") + "/" + split_pattern
    files = sorted(fileio.glob(pattern))
    if not files:
        raise DataRejectedError(f"no CSV file matches {pattern}")
    return files


class _CsvToTimedRecords(beam.PTransform):
    """Reads CSV files into (Time, serialized tf.Example) typed by the feature contract.

    careful: read with Python's csv module a row at a time (see the module's docstring) instead of the fast reader.
    times_only: the fast reader's Time values alone (floats), for the time split's cuts.
    """

    def __init__(self, files: list[str], careful: bool, times_only: bool = False):
        super().__init__()
        self._files = list(files)
        self._careful = careful
        self._times_only = times_only

    def expand(self, pipeline):
        files = self._files
        names = _read_header(files[0])
        for path in files[1:]:
            if _read_header(path) != names:
                raise DataRejectedError(f"{path}: its header differs from the header of {files[0]}")
        paths = pipeline | "Files" >> beam.Create(files) | "Reshuffle" >> beam.Reshuffle()
        if not self._careful:
            return paths | "ReadRecords" >> beam.ParDo(_ReadCsvRecords(names, self._times_only))
        label_index = names.index(contract.LABEL) if contract.LABEL in names else None
        rows = paths | "ReadRows" >> beam.ParDo(_ReadCsvRows(len(names), label_index))
        kinds = beam.pvalue.AsSingleton(
            rows | "ColumnTypes" >> beam.CombineGlobally(_ColumnsParse([_contract_type(n) for n in names]))
        )
        return rows | "ToExample" >> beam.Map(_to_example, names, kinds) | "Serialize" >> beam.Map(_timed_record)


class _CsvToRecords(beam.PTransform):
    """The serialized tf.Examples alone (for TFX's hash split: its signature is (exec_properties, pattern))."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str, careful: bool):
        super().__init__()
        self._timed = _CsvToTimedRecords(input_files(exec_properties, split_pattern), careful)

    def expand(self, pipeline):
        return pipeline | "Read" >> self._timed | "Records" >> beam.Map(_record)


def _record(timed: tuple[float | None, bytes]) -> bytes:
    """The serialized tf.Example of a (Time, record) pair."""
    return timed[1]


def _time_cuts(quantiles: list[float], shares: list[float]) -> list[float]:
    """The Time values at the cumulative shares of all splits but the last."""
    if not quantiles:
        return []
    last = len(quantiles) - 1
    cuts, total = [], 0.0
    for share in shares[:-1]:
        total += share
        cuts.append(quantiles[round(total * last)])
    return cuts


def _time_partition(timed: tuple[float | None, bytes], num_partitions: int, cuts: list[float]) -> int:
    time = timed[0]
    if time is None:
        # No usable Time: the row goes to the first split, where the
        # ExampleValidator reports the missing or malformed feature.
        return 0
    for index, cut in enumerate(cuts):
        if time < cut:
            return index
    return num_partitions - 1


def _fast_reader_refused(error: BaseException | None) -> bool:
    """Is FastReaderRefusedError behind the error (Beam may wrap it, or on a remote runner pass only its text)?"""
    while error is not None:
        if isinstance(error, FastReaderRefusedError) or FastReaderRefusedError.__name__ in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def record_data(artifact, exec_properties: dict[str, Any], pattern: str) -> None:
    """Puts what the run trained on on its Examples artifact: the files read (relative to the input base, as JSON)
    and their content fingerprint (components.serving.data_fingerprint), which makes the models' training identity."""
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = input_files(exec_properties, pattern)
    names = [serving.relative(f, base) for f in files]
    artifact.set_string_custom_property(contract.DATA_FILES_PROPERTY, json.dumps(names))
    artifact.set_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY, serving.data_fingerprint(files, base))


def record_spans(artifact, selection: SpanSelection) -> None:
    """Puts the spans a run read on its Examples artifact: TFX's span property (the newest span's number) and, as
    custom properties, the pattern, the window's labels (JSON) and the previous span's label ('' on the first)."""
    artifact.span = selection.newest.number
    artifact.set_string_custom_property("span_pattern", selection.pattern)
    artifact.set_string_custom_property("spans", json.dumps([s.label for s in selection.window]))
    artifact.set_string_custom_property("previous_span", selection.previous.label if selection.previous else "")


class Executor(BaseExampleGenExecutor):
    """Reads CSV by the feature contract (fast reader first, the careful one if needed); splits by hash or time."""

    _careful = False

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        try:
            self._generate(output_dict, exec_properties)
        except Exception as e:
            if self._careful or not _fast_reader_refused(e):
                raise
            logging.warning("the fast CSV reader stopped (%s); reading again with the careful reader", e)
            examples = output_dict[standard_component_specs.EXAMPLES_KEY]
            for split in artifact_utils.decode_split_names(artifact_utils.get_single_instance(examples).split_names):
                uri = artifact_utils.get_split_uri(examples, split)
                if fileio.exists(uri):
                    fileio.rmtree(uri)
            self._careful = True
            self._generate(output_dict, exec_properties)

    def _generate(self, output_dict, exec_properties) -> None:
        """TFX's ExampleGen Do without its Reshuffle before writing (a quarter of this component's time on the
        full file): nothing downstream depends on the order of the records (the Trainer orders and shuffles its
        rows itself), and without it they keep the order of the input within each split."""
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        json_format.Parse(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        names = example_gen_utils.generate_output_split_names(input_config, output_config)
        selection = select_spans(exec_properties)
        if selection is not None:
            names += list(contract.DRIFT_PAIR)
            record_spans(artifact, selection)
        artifact.split_names = artifact_utils.encode_split_names(names)
        record_data(artifact, exec_properties, input_config.splits[0].pattern)
        with self._make_beam_pipeline() as pipeline:
            for name, records in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                prefix = os.path.join(artifact_utils.get_split_uri(examples, name), write_split.DEFAULT_FILE_NAME)
                _ = records | f"WriteSplit[{name}]" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=".gz")
        examples_utils.set_payload_format(artifact, exec_properties[standard_component_specs.OUTPUT_DATA_FORMAT_KEY])
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return functools.partial(_CsvToRecords, careful=self._careful)

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        """The train, eval and test splits (by time or hash); with spans also the newest and previous span's rows
        (the newest again when there is no previous span yet, so the drift comparison finds nothing)."""
        if _split_scheme(exec_properties) == "time":
            splits = self._time_splits(pipeline, exec_properties)
        else:
            splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
        selection = select_spans(exec_properties)
        if selection is not None:
            baseline = selection.previous or selection.newest
            for name, span in zip(contract.DRIFT_PAIR, (selection.newest, baseline)):
                timed = pipeline | f"ReadSpan[{name}]" >> _CsvToTimedRecords(span.files, self._careful)
                splits[name] = timed | f"Records[{name}]" >> beam.Map(_record)
        return splits

    def _time_splits(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        json_format.Parse(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        splits = output_config.split_config.splits
        if len(input_config.splits) != 1 or not splits:
            raise ValueError("the time split needs one input pattern and output splits with hash buckets")
        total = sum(s.hash_buckets for s in splits)
        shares = [s.hash_buckets / total for s in splits]

        files = input_files(exec_properties, input_config.splits[0].pattern)
        read = functools.partial(_CsvToTimedRecords, files, self._careful)
        timed = pipeline | "InputToRecord" >> read()
        if self._careful:
            times = timed | "Time" >> beam.FlatMap(lambda t: [t[0]] if t[0] is not None else [])
        else:
            # A second pass over the files reads Time alone, so the records need not wait in memory for the cuts:
            # they stream from the file to their split's output, and memory stays flat as the data grows.
            times = pipeline | "ReadTimes" >> read(times_only=True)
        cuts = (
            times
            | "Quantiles" >> beam.ApproximateQuantiles.Globally(_NUM_QUANTILES)
            | "Cuts" >> beam.Map(_time_cuts, shares)
        )
        parts = timed | "SplitByTime" >> beam.Partition(_time_partition, len(splits), beam.pvalue.AsSingleton(cuts))
        return {
            split.name: parts[index] | f"Records[{split.name}]" >> beam.Map(_record)
            for index, split in enumerate(splits)
        }


def _spec(input_base, input_pattern: str, split: str, code_version: str, span_pattern: str, window: int):
    """The FileBasedExampleGen spec of this reader: one input pattern, the contract's splits, the split scheme."""
    pattern = spans.glob_of(span_pattern) if span_pattern else input_pattern
    return standard_component_specs.FileBasedExampleGenSpec(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in contract.SPLIT_BUCKETS.items()
                ]
            )
        ),
        custom_config=split_custom_config(split, code_version, span_pattern, window),
        range_config=None,
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        examples=channel.Channel(type=standard_artifacts.Examples),
    )


class CsvExampleGen(example_gen_component.FileBasedExampleGen):
    """CsvExampleGen with this project's reader; keeps the stock component id. For local runs: TFX's driver
    fingerprints the input files before the cache lookup, so changed data re-runs the component."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        input_pattern: str,
        split: str,
        code_version: str = "",
        span_pattern: str = "",
        window: int = 0,
    ):
        """Args: input_base: the folder; input_pattern: file glob inside it; split: 'time' or 'random';
        code_version: the fingerprint of this code, part of the cache key; span_pattern: for input in spans, their
        pattern with {SPAN} or a date (input_pattern is then ignored); window: the newest spans to read (0: all).

        With spans, TFX's driver fingerprints every file of every span (the input pattern is the span pattern with
        '*' for its placeholders), so a new span re-runs the component; the executor picks the window at run time."""
        spec = _spec(input_base, input_pattern, split, code_version, span_pattern, window)
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)


class CsvExampleGenTask(base_beam_component.BaseBeamComponent):
    """The same component without TFX's driver, for Kubeflow Pipelines and Vertex AI (id CsvExampleGen).

    TFX compiles a FileBasedExampleGen's driver into the container's lifecycle.preCacheCheck hook, which nothing in
    the open-source Kubeflow Pipelines backend runs. This executor needs no driver (it finds the files and spans at
    run time); the compiled task is not cached instead (pipeline.runners.kubeflow), since no cache key there can
    see the files.
    """

    SPEC_CLASS = standard_component_specs.FileBasedExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base, input_pattern: str, split: str, code_version="", span_pattern="", window=0):
        """Args as CsvExampleGen's."""
        super().__init__(spec=_spec(input_base, input_pattern, split, code_version, span_pattern, window))
        self.with_id(CsvExampleGen.__name__)
