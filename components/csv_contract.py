"""The CSV contract of transaction files, read in one place by CsvExampleGen (training), predict and replay.

A file is UTF-8 CSV, plain or gzip (by its `.gz` name), with a header line (a byte order mark is ignored) and one row
per transaction: the 30 features of contract.RAW_FLOAT_FEATURES as numbers and, optionally for scoring, the label
`Class`, 0 or 1 (written `1` or `1.0` alike). Two ways to read the rows:
- fast: Arrow's CSV parser, a block of rows at a time as float64 columns; it refuses (FastReaderRefusedError) at the
  first thing it does not accept, and the caller starts the careful way from there;
- careful: Python's csv module, a row at a time, which names the file, line and column of what is wrong.
Errors are DataRejectedError, one sentence naming the file and the line. No Beam, TFX or TensorFlow here (TensorFlow's
gfile only for an object-store path): `predict` and `replay` import this without the pipeline's stack.
"""

import contextlib
import csv
import gzip
import math
import zlib
from collections.abc import Iterator

import contract
from components.rejection import DataRejectedError

FEATURES = contract.RAW_FLOAT_FEATURES
BOM = "\ufeff"
# Bytes of CSV text the fast reader parses at a time (about 20,000 rows of this data).
FAST_BLOCK_BYTES = 4 << 20


class FastReaderRefusedError(Exception):
    """The fast reader met something it does not accept; the careful reader must read from there instead.

    Attributes:
      rows_done: the rows it had given before (the careful reader skips them).
    """

    def __init__(self, message: str, rows_done: int = 0):
        super().__init__(message)
        self.rows_done = rows_done


def _raw(path: str, mode: str):
    if "://" in path:
        import tensorflow as tf  # object stores only

        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


@contextlib.contextmanager
def open_binary(path: str):
    """The file's bytes, decompressed when its name ends in .gz (Python's gzip, which says so when the file breaks
    off; Beam's own gzip reading stops quietly at a truncated end)."""
    with _raw(path, "rb") as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped
        else:
            yield raw


def open_text(path: str, mode: str = "r"):
    """A text file for reading or writing, gzip-compressed when its name ends in .gz."""
    if path.endswith(".gz"):
        return gzip.open(path, mode + "t", newline="")
    return open(path, mode, newline="")


def text_lines(path: str) -> Iterator[str]:
    """The file's lines as text (the byte order mark of the first one removed).

    Raises:
      DataRejectedError: a gzip file that is truncated or corrupt, or bytes that are not UTF-8, naming the file
        and the line.
    """
    number = 0
    with open_binary(path) as stream:
        try:
            for number, line in enumerate(iter(stream.readline, b""), start=1):
                text = line.decode("utf-8")
                yield text.removeprefix(BOM) if number == 1 else text
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataRejectedError(
                f"{path} is not a complete gzip file (it breaks off after line {number}: {e}); "
                "download or compress it again"
            ) from e
        except UnicodeDecodeError as e:
            raise DataRejectedError(
                f"{path}, line {number}: not UTF-8 text ({e.reason}); save the file as UTF-8 CSV"
            ) from e


def read_header(path: str) -> list[str]:
    """The column names of the header line.

    Raises:
      DataRejectedError: the file is empty (or not readable as above).
    """
    with contextlib.closing(text_lines(path)) as lines:
        first = next(lines, "")
    if not first.strip():
        raise DataRejectedError(
            f"{path} is empty: a CSV file starts with the header line ({','.join(contract.RAW_COLUMNS[:3])},...) "
            "and holds one row per transaction"
        )
    return next(csv.reader([first]))


def integer(cell: str) -> int | None:
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


def label(cell: str) -> int | None:
    """A label cell as 0 or 1, None when empty.

    Raises:
      ValueError: anything else, with the reason.
    """
    if cell.strip() == "":
        return None
    value = integer(cell.strip())
    if value not in (0, 1):
        raise ValueError(f"{contract.LABEL} is {cell!r}; it must be 0 or 1")
    return value


def is_fraud(cell: str) -> bool:
    """Is a label cell 1 (in any spelling the contract takes)?"""
    try:
        return label(cell) == 1
    except ValueError:
        return False


def refuse_fractional_label(cell: str, path: str, line: int) -> None:
    """Training: a label that is a number but not a whole one (0.5) is refused where the line is known; text is let
    through, kept as bytes, so that the validator names the column."""
    try:
        value = float(cell)
    except ValueError:
        return
    if value == value and not value.is_integer():
        raise DataRejectedError(f"{path}, line {line}: {contract.LABEL} is {cell!r}; it must be 0 or 1")


def scoring_columns(
    path: str, header: list[str] | None, key: str | None = None
) -> tuple[list[int], int | None, int | None]:
    """Where the features, the label and the key are in a file to score: (feature indices, label index or None,
    key index or None). The features are required; Class and the key column are optional, nothing else may be there.

    Raises:
      DataRejectedError: an empty file, or a header that lacks a feature or has a column the model does not know.
    """
    if not header:
        raise DataRejectedError(
            f"{path} is empty: a CSV file starts with the header line ({','.join(FEATURES[:3])},...)"
        )
    known = set(contract.RAW_COLUMNS) | ({key} if key else set())
    missing = [f for f in FEATURES if f not in header]
    unknown = [c for c in header if c not in known]
    if key and key not in header:
        missing.append(f"the key column {key}")
    if missing or unknown:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has columns the model does not know: {', '.join(unknown)}"] if unknown else []
        )
        raise DataRejectedError(f"{path}, line 1 (header): {'; '.join(problems)}")
    label_index = header.index(contract.LABEL) if contract.LABEL in header else None
    return [header.index(f) for f in FEATURES], label_index, (header.index(key) if key else None)


def scoring_problem(cells: list[str], width: int, indices: list[int], label_index: int | None) -> str | None:
    """Why a row to score breaks the contract, naming the column; None when it is good."""
    if len(cells) != width:
        return f"{len(cells)} fields where the header has {width}"
    for name, index in zip(FEATURES, indices):
        try:
            value = float(cells[index])
        except ValueError:
            return f"column {name}: {cells[index]!r} is not a number"
        if not math.isfinite(value):
            return f"column {name}: {cells[index]!r} is not a finite number"
    if label_index is not None:
        try:
            label(cells[label_index])
        except ValueError:
            return f"column {contract.LABEL}: {cells[label_index]!r} is not 0 or 1"
    return None


def careful_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank row after the header, read by Python's csv module."""
    reader = csv.reader(text_lines(path))
    next(reader, None)
    for cells in reader:
        if cells:
            yield reader.line_num, cells


def checked_rows(path: str, width: int, label_index: int | None) -> Iterator[list[str]]:
    """Training: the cells of every row, refusing a row of the wrong width or a fractional label (file and line)."""
    for line, cells in careful_rows(path):
        if len(cells) != width:
            raise DataRejectedError(
                f"{path}, line {line}: {len(cells)} fields where the header has {width}; "
                "every row needs one value per column"
            )
        if label_index is not None and cells[label_index]:
            refuse_fractional_label(cells[label_index], path, line)
        yield cells


@contextlib.contextmanager
def refusals(path: str, rows_done=lambda: 0):
    """What the fast reader does not accept becomes FastReaderRefusedError naming the file (and the rows done)."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, EOFError, OSError, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise FastReaderRefusedError(f"{path}: {e}", rows_done()) from e


def arrow_blocks(
    path: str, names: list[str], columns: list[str], keep_blank_lines: bool = False, text_columns=()
) -> Iterator:
    """The file's rows as Arrow record batches of float64 columns (only `columns` of them; `text_columns` among them
    as strings), a block at a time.

    Empty cells are nulls. With keep_blank_lines a blank line is an error (so that row i is line i + 2, which a
    caller naming lines needs); else blank lines are skipped. Errors are Arrow's: wrap the reading in refusals().
    """
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    with open_binary(path) as stream:
        stream.readline()  # the header, read already (with its byte order mark, if any)
        yield from pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=FAST_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=not keep_blank_lines),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() if name in text_columns else pa.float64() for name in columns},
                include_columns=columns,
                null_values=[""],
                quoted_strings_can_be_null=False,
            ),
        )
