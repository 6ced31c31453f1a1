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
"""

import contextlib
import csv
import gzip
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

import contract
from components.rejection import DataRejectedError

_FLOAT, _INT, _BYTES = "float", "int", "bytes"
# Spreadsheet tools often start a UTF-8 CSV with a byte order mark; it is not part of the first column's name.
_BOM = "\ufeff"
# Enough quantiles that a cut lands within 0.1% of its target share.
_NUM_QUANTILES = 1001


def split_custom_config(split: str, code_version: str = "") -> example_gen_pb2.CustomConfig:
    """Packs the split scheme into the CustomConfig the executor reads.

    code_version (the fingerprint of this reader's code) is carried only so that a change to the code changes
    the component's cache key and re-runs it.
    """
    if split not in contract.SPLIT_SCHEMES:
        raise ValueError(f"unknown split scheme {split!r}; expected one of {contract.SPLIT_SCHEMES}")
    fields = {
        "split": struct_pb2.Value(string_value=split),
        "code_version": struct_pb2.Value(string_value=code_version),
    }
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct_pb2.Struct(fields=fields))
    return config


def _split_scheme(exec_properties: dict[str, Any]) -> str:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return "random"
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    return struct.fields["split"].string_value or "random"


def _text_lines(path: str) -> Iterator[str]:
    """The lines of a CSV file as text, plain or gzip (by its extension), without a leading byte order mark.

    Raises:
      DataRejectedError: a gzip file that is truncated or corrupt, or bytes that are not UTF-8, naming the file
        and the line.
    """
    gz = path.endswith(".gz")
    # Beam's own gzip reading stops quietly at a truncated end; Python's gzip module says so.
    compression = CompressionTypes.UNCOMPRESSED if gz else CompressionTypes.AUTO
    number = 0
    with FileSystems.open(path, compression_type=compression) as raw:
        stream = gzip.GzipFile(fileobj=raw) if gz else raw
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
    with contextlib.closing(_text_lines(path)) as lines:
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
        reader = csv.reader(_text_lines(path))
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


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
class _CsvToExample(beam.PTransform):
    """Reads the CSV files of one input pattern into tf.Examples typed by the feature contract."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = base.rstrip("/") + "/" + split_pattern

    def expand(self, pipeline):
        files = sorted(fileio.glob(self._pattern))
        if not files:
            raise DataRejectedError(f"no CSV file matches {self._pattern}")
        names = _read_header(files[0])
        for path in files[1:]:
            if _read_header(path) != names:
                raise DataRejectedError(f"{path}: its header differs from the header of {files[0]}")
        label_index = names.index(contract.LABEL) if contract.LABEL in names else None
        rows = (
            pipeline
            | "Files" >> beam.Create(files)
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadRows" >> beam.ParDo(_ReadCsvRows(len(names), label_index))
        )
        kinds = beam.pvalue.AsSingleton(
            rows | "ColumnTypes" >> beam.CombineGlobally(_ColumnsParse([_contract_type(n) for n in names]))
        )
        return rows | "ToExample" >> beam.Map(_to_example, names, kinds)


def _time_of(example: tf.train.Example) -> float | None:
    values = example.features.feature[contract.TIME].float_list.value
    return values[0] if values else None


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


def _time_partition(example: tf.train.Example, num_partitions: int, cuts: list[float]) -> int:
    time = _time_of(example)
    if time is None:
        # No usable Time: the row goes to the first split, where the
        # ExampleValidator reports the missing or malformed feature.
        return 0
    for index, cut in enumerate(cuts):
        if time < cut:
            return index
    return num_partitions - 1


class Executor(BaseExampleGenExecutor):
    """Reads CSV by the feature contract; splits by hash or by time."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExample

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        if _split_scheme(exec_properties) != "time":
            return super().GenerateExamplesByBeam(pipeline, exec_properties)
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        json_format.Parse(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        splits = output_config.split_config.splits
        if len(input_config.splits) != 1 or not splits:
            raise ValueError("the time split needs one input pattern and output splits with hash buckets")
        total = sum(s.hash_buckets for s in splits)
        shares = [s.hash_buckets / total for s in splits]

        examples = pipeline | "InputToRecord" >> _CsvToExample(exec_properties, input_config.splits[0].pattern)
        cuts = (
            examples
            | "Time" >> beam.FlatMap(lambda e: [t] if (t := _time_of(e)) is not None else [])
            | "Quantiles" >> beam.ApproximateQuantiles.Globally(_NUM_QUANTILES)
            | "Cuts" >> beam.Map(_time_cuts, shares)
        )
        parts = examples | "SplitByTime" >> beam.Partition(_time_partition, len(splits), beam.pvalue.AsSingleton(cuts))
        return {split.name: parts[index] for index, split in enumerate(splits)}


class CsvExampleGen(example_gen_component.FileBasedExampleGen):
    """CsvExampleGen with this project's reader; keeps the stock component id."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str, input_pattern: str, split: str, code_version: str = ""):
        """Args: input_base: the folder; input_pattern: file glob inside it; split: 'time' or 'random';
        code_version: the fingerprint of this code, part of the cache key."""
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=input_pattern)]),
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                        for name, buckets in contract.SPLIT_BUCKETS.items()
                    ]
                )
            ),
            custom_config=split_custom_config(split, code_version),
        )
