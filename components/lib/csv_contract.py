"""The CSV contract of transaction files, read in one place by CsvExampleGen (training), predict and replay.

Longer than a module should be, on purpose: it is the one definition of a valid row and of every guard in front of
the readers, shared by every entry point, and split it would give two places to keep in step.

A file is UTF-8 CSV, plain or gzip (by its `.gz` name), with a header line (a byte order mark is ignored) and one row
per transaction: the 30 features of contract.RAW_FLOAT_FEATURES as numbers and, optionally for scoring, the label
`Class`, 0 or 1 (written `1` or `1.0` alike). Two ways to read the rows:
- fast: Arrow's CSV parser, a block of rows at a time as float64 columns; it refuses (FastReaderRefusedError) at the
  first thing it does not accept, and the caller starts the careful way from there;
- careful: Python's csv module, a row at a time, which names the file, line and column of what is wrong.
Errors are DataRejectedError, one sentence naming the file and the line. No Beam, TFX or TensorFlow here (TensorFlow's
gfile only for an object-store path): `predict` and `replay` import this without the pipeline's stack.

Every byte either reader sees has passed a guard (Bounded) first: no line is longer than MAX_LINE_BYTES, no header has
more than MAX_COLUMNS columns, and no gzip file expands past MAX_GZIP_RATIO times its size, so memory stays bounded
whatever the file holds. Arrow's reader (pyarrow 10) crashes the process or hangs on a line of a few hundred KB
(docs/faults.md): it is never given one, the guard ends its stream before such a line and the error is raised after.
"""

import concurrent.futures
import contextlib
import csv
import gzip
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator

import contract
from components.lib.rejection import DataRejectedError
from datasets import spec as dataset_spec

FEATURES = contract.RAW_FLOAT_FEATURES
BOM = "\ufeff"
# Bytes of CSV text the fast reader parses at a time (several thousand rows of this data).
FAST_BLOCK_BYTES = 4 << 20
# The longest line (the header too) either reader takes: far above a row of this contract, far below the lines that
# crashed Arrow's reader (docs/faults.md, "The limits", for the measurements; tests/test_hostile_input_unit.py).
MAX_LINE_BYTES = 32 << 10
# The most columns a header may have (the contract has 31).
MAX_COLUMNS = 1000
# A gzip file that has expanded past MIN_RATIO_CHECK_BYTES may not be more than this many times its compressed size
# so far: well above what CSV of transactions compresses to, well below a bomb (docs/faults.md, "The limits").
MAX_GZIP_RATIO = 100
MIN_RATIO_CHECK_BYTES = 16 << 20
# Columns named in a message before the rest are only counted.
NAMED_COLUMNS = 5


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


class _Gunzip(io.RawIOBase):
    """A gzip file's bytes, decompressed by zlib in blocks of up to _INFLATE_BYTES (members joined one after another,
    each checked against its CRC; zero bytes after the last ignored, as gzip does). Python's GzipFile decompresses a
    few KB at a time, holding the interpreter's lock between, which the reader's thread then takes from Arrow's
    parser (docs/benchmarks.md, "Hostile input").

    Raises (on read): EOFError when the file breaks off, zlib.error when it is corrupt.
    """

    def __init__(self, raw):
        self._raw, self.compressed = raw, 0
        self._inflate, self._input, self._started = zlib.decompressobj(31), b"", False

    def readable(self) -> bool:
        return True

    def _more(self) -> bytes:
        data = self._raw.read(_INFLATE_BYTES)
        self.compressed += len(data)
        return data

    def readinto(self, buffer) -> int:
        while True:
            if self._inflate.eof:
                rest = self._inflate.unused_data.lstrip(b"\0") or self._more().lstrip(b"\0")
                if not rest:
                    return 0
                self._inflate, self._input = zlib.decompressobj(31), rest
            if not self._input:
                self._input = self._more()
                if not self._input:
                    if self._started:
                        raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                    return 0
            out = self._inflate.decompress(self._input, len(buffer))
            self._input, self._started = self._inflate.unconsumed_tail, True
            if out:
                buffer[: len(out)] = out
                return len(out)


_INFLATE_BYTES = 1 << 20


@contextlib.contextmanager
def open_binary(path: str):
    """The file's bytes, decompressed when its name ends in .gz (_Gunzip, which says so when the file breaks off;
    Beam's own gzip reading stops quietly at a truncated end), behind the guard of the limits (Bounded)."""
    with _raw(path, "rb") as raw:
        if path.endswith(".gz"):
            gunzip = _Gunzip(raw)
            with io.BufferedReader(gunzip, _INFLATE_BYTES) as unzipped:
                yield Bounded(unzipped, path, lambda: gunzip.compressed)
        else:
            yield Bounded(raw, path)


def open_text(path: str, mode: str = "r", gz: bool | None = None):
    """A text file for reading or writing, gzip-compressed when its name ends in .gz (or when gz says so)."""
    if path.endswith(".gz") if gz is None else gz:
        return gzip.open(path, mode + "t", newline="")
    return open(path, mode, newline="")


def _numpy():
    import numpy as np

    return np


def bomb_message(path: str, compressed: int, out: int) -> str:
    return (
        f"{path}: {compressed:,} bytes of gzip expand to more than {out:,} (over {MAX_GZIP_RATIO} times; CSV of "
        "transactions compresses about 2.5 times): refused as a gzip bomb. If the file is genuine, decompress it and "
        "give the plain file"
    )


class BlankLinesError(ValueError):
    """The fast reader keeping blank lines met one (refusals() hands the file to the careful reader)."""


class Bounded:
    """A decompressed byte stream that enforces the limits: no line longer than MAX_LINE_BYTES, no gzip file
    expanded past MAX_GZIP_RATIO times its size.

    readline() raises DataRejectedError at once (the careful reader, in Python). read(), which gives the fast reader
    its blocks (from a thread: _arrow_batches), never raises: at a line past the limit it ends the stream just before
    that line and keeps the error in `problem`, for the caller to raise once Arrow has parsed what came before. Line
    numbers count the lines read through the guard, the first being 1.
    """

    def __init__(self, stream, path: str, compressed: Callable[[], int] | None = None):
        self._stream, self.path, self._compressed = stream, path, compressed
        # Set by arrow_blocks(keep_blank_lines=True): a blank line ends the stream (a refusal, not a rejection).
        self.refuse_blank_lines = False
        self._ended_line = True  # the bytes passed so far end with a line end (or none passed)
        self.lines = 0  # whole lines passed
        self._open_line = 0  # bytes of the line passed so far without its end
        self._out = 0
        self.problem: ValueError | None = None

    def _too_long(self, line: int) -> DataRejectedError:
        what = "the header (line 1)" if line == 1 else f"line {line}"
        return DataRejectedError(
            f"{self.path}: {what} is longer than {MAX_LINE_BYTES:,} bytes, the longest line the contract reads (a row "
            "of transactions is under 1 KB): is this a CSV file of transactions?"
        )

    def _check_ratio(self) -> None:
        if self._compressed is None or self._out < MIN_RATIO_CHECK_BYTES:
            return
        compressed = max(self._compressed(), 1)
        if self._out > MAX_GZIP_RATIO * compressed:
            raise DataRejectedError(bomb_message(self.path, compressed, self._out))

    def readline(self, size: int = -1) -> bytes:
        if self.problem is not None:
            raise self.problem
        line = self._stream.readline(MAX_LINE_BYTES + 1 - self._open_line)
        self._out += len(line)
        if line.endswith(b"\n"):
            self.lines += 1
            self._open_line = 0
        elif line:
            self._open_line += len(line)
            if self._open_line > MAX_LINE_BYTES:
                self.problem = self._too_long(self.lines + 1)
                raise self.problem
        self._check_ratio()
        return line

    def read(self, size: int = -1) -> bytes:
        if self.problem is not None:
            return b""
        chunk = self._stream.read(size)
        if not chunk:
            return b""
        self._out += len(chunk)
        try:
            self._check_ratio()
        except DataRejectedError as e:
            self.problem = e
            return b""
        if self._blank_line(chunk):
            # Arrow's reader keeping blank lines takes hundreds of bytes of memory a blank line before it says
            # anything (docs/faults.md): the careful reader skips them, a row at a time.
            self.problem = BlankLinesError(f"{self.path}: a blank line (the careful reader skips them)")
            return b""
        if self._short_lines(chunk):
            self.lines += chunk.count(b"\n")
            self._open_line = len(chunk) - chunk.rfind(b"\n") - 1
            self._ended_line = chunk.endswith(b"\n")
            return chunk
        np = _numpy()
        ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
        if ends.size == 0:
            lengths, tail = np.empty(0, np.int64), self._open_line + len(chunk)
        else:
            lengths = np.diff(ends, prepend=-1) - 1  # each whole line's bytes without its end
            lengths[0] += self._open_line
            tail = len(chunk) - int(ends[-1]) - 1
        self._ended_line = chunk.endswith(b"\n")
        long = np.flatnonzero(lengths > MAX_LINE_BYTES)
        if long.size or tail > MAX_LINE_BYTES:
            at = int(long[0]) if long.size else len(ends)
            self.problem = self._too_long(self.lines + at + 1)
            # Only the whole lines before the long one reach the reader (none of it, if it began in an earlier
            # chunk: then the reader sees a last line broken off, and the caller raises the problem instead).
            keep = int(ends[at - 1]) + 1 if at > 0 else 0
            self.lines += at
            return chunk[:keep]
        self.lines += len(ends)
        self._open_line = tail
        return chunk

    def _blank_line(self, chunk: bytes) -> bool:
        """Is there a blank line in the chunk, where blank lines are refused (refuse_blank_lines)?"""
        return self.refuse_blank_lines and (
            b"\n\n" in chunk or b"\n\r\n" in chunk or (self._ended_line and chunk[:1] in (b"\n", b"\r"))
        )

    def _short_lines(self, chunk: bytes) -> bool:
        """The quick proof that no line of the chunk is past the limit (bytes.find over aligned windows of half the
        limit: a longer line holds a whole window without a line end); False sends the chunk to the exact check,
        which finds the line and its number."""
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if first < 0 or self._open_line + first > MAX_LINE_BYTES or len(chunk) - last - 1 > MAX_LINE_BYTES:
            return False
        window = MAX_LINE_BYTES // 2
        return all(chunk.find(b"\n", k, k + window) >= 0 for k in range(first + 1, last - window + 1, window))

    def raise_problem(self) -> None:
        """Raises what the guard stopped the stream for, if anything."""
        if self.problem is not None:
            raise self.problem


def text_lines(path: str) -> Iterator[str]:
    """The file's lines as text (the byte order mark of the first one removed).

    Raises:
      DataRejectedError: a gzip file that is truncated or corrupt, or bytes that are not UTF-8, naming the file
        and the line; a line or a gzip ratio past the limits (Bounded).
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


def _header_cells(path: str, first: str) -> list[str]:
    try:
        cells = next(csv.reader([first]))
    except csv.Error as e:
        raise DataRejectedError(f"{path}, line 1 (header): {e}") from e
    if len(cells) > MAX_COLUMNS:
        raise DataRejectedError(
            f"{path}, line 1 (header): {len(cells):,} columns, more than the {MAX_COLUMNS:,} the contract reads (it "
            f"has {len(contract.RAW_COLUMNS)}): {names(cells)}"
        )
    return cells


def names(cells: list[str], limit: int = NAMED_COLUMNS) -> str:
    """The first few of a list of column names, and how many more (a header of 100,000 columns is not printed)."""
    shown = ", ".join(cells[:limit])
    return shown + (f" and {len(cells) - limit:,} more" if len(cells) > limit else "")


def _empty(path: str) -> DataRejectedError:
    return DataRejectedError(
        f"{path} is empty: a CSV file starts with the header line ({','.join(contract.RAW_COLUMNS[:3])},...) "
        "and holds one row per transaction"
    )


def read_header(path: str) -> list[str]:
    """The column names of the header line.

    Raises:
      DataRejectedError: the file is empty, its header is past the limits (MAX_LINE_BYTES, MAX_COLUMNS), or it is
        not readable as above.
    """
    with contextlib.closing(text_lines(path)) as lines:
        first = next(lines, "")
    if not first.strip():
        raise _empty(path)
    return _header_cells(path, first)


def _header_and_rows(path: str) -> tuple[list[str], bool]:
    """read_header(), and whether a line with something on it follows (read as far as the first one), in one pass."""
    with contextlib.closing(text_lines(path)) as lines:
        first = next(lines, "")
        if not first.strip():
            raise _empty(path)
        return _header_cells(path, first), any(line.strip() for line in lines)


def header_problems(header: list[str], required, optional=(), what: str = "the contract") -> list[str]:
    """What a header lacks of `required` and has beyond required and optional, one phrase each ([] when nothing)."""
    known = set(required) | set(optional)
    missing = [f for f in required if f not in header]
    unknown = [c for c in header if c not in known]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    return (
        ([f"lacks {names(missing)}"] if missing else [])
        + ([f"has columns {what} does not know: {names(unknown)}"] if unknown else [])
        + ([f"names {names(duplicated)} twice"] if duplicated else [])
    )


def check_gzip(path: str) -> None:
    """Decompresses a local gzip file to its end without keeping it (zlib; its cost is on docs/benchmarks.md,
    "Hostile input"), so that a file that breaks off is refused before a run starts, with the words text_lines() uses.

    Raises:
      DataRejectedError: a gzip file that is truncated or corrupt, or past MAX_GZIP_RATIO.
    """
    lines = out = 0
    try:
        with open(path, "rb") as raw:
            gunzip = _Gunzip(raw)
            with io.BufferedReader(gunzip, _INFLATE_BYTES) as unzipped:
                while chunk := unzipped.read(_INFLATE_BYTES):
                    out += len(chunk)
                    lines += chunk.count(b"\n")
                    if out >= MIN_RATIO_CHECK_BYTES and out > MAX_GZIP_RATIO * gunzip.compressed:
                        raise DataRejectedError(bomb_message(path, gunzip.compressed, out))
    except (EOFError, zlib.error) as e:
        raise DataRejectedError(
            f"{path} is not a complete gzip file (it breaks off after line {lines}: {e}); download or compress it again"
        ) from e


def check_training_files(files: list[str], columns=contract.RAW_COLUMNS) -> None:
    """What can be known of training files from their first bytes, before anything is imported or started: each is
    not empty, its header is within the limits and has the dataset's columns (the spec's columns, the default
    dataset's features and Class; nothing else), and the files hold at least one row between them. CsvExampleGen
    checks the same with this function.

    Raises:
      DataRejectedError: naming the file and what is wrong.
    """
    rows = False
    for path in files:
        header, has_rows = _header_and_rows(path)
        problems = header_problems(header, columns)
        if problems:
            raise DataRejectedError(f"{path}, line 1 (header): {'; '.join(problems)}")
        if path.endswith(".gz") and "://" not in path:
            check_gzip(path)
        rows = rows or has_rows
    if files and not rows:
        where = files[0] if len(files) == 1 else f"{os.path.dirname(files[0])} ({len(files)} files)"
        raise DataRejectedError(f"{where}: the input holds no rows (a header alone?)")


integer = dataset_spec.integer


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
    problems = header_problems(header, FEATURES, [contract.LABEL] + ([key] if key else []), what="the model")
    if key and key not in header:
        problems.insert(0, f"lacks the key column {key}")
    if problems:
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
    """(line number, cells) of every non-blank row after the header, read by Python's csv module.

    Raises:
      DataRejectedError: what the csv module cannot read (a NUL byte, a quoted field that never ends), naming the line.
    """
    reader = csv.reader(text_lines(path))
    try:
        next(reader, None)
        for cells in reader:
            if cells:
                yield reader.line_num, cells
    except csv.Error as e:
        raise DataRejectedError(f"{path}, line {reader.line_num}: {e}; not CSV the contract reads") from e


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
    except DataRejectedError:
        raise
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

    with open_binary(path) as stream:
        stream.readline()  # the header, read already (with its byte order mark, if any)
        stream.refuse_blank_lines = keep_blank_lines
        try:
            yield from _arrow_batches(stream, names, columns, keep_blank_lines, text_columns)
        except pa.ArrowException:
            stream.raise_problem()  # Arrow saw the stream end mid-line where the guard stopped it
            raise
        stream.raise_problem()


def _arrow_batches(stream, names, columns, keep_blank_lines, text_columns):
    """Arrow's reader on one block of whole lines at a time, each read here and parsed from memory.

    Not Arrow's reader on the Python stream: it reads the stream from a thread of its own, and when it stops on an
    error that thread can outlive it; at the interpreter's exit the process then aborts ("terminate called without
    an active exception", exit 134, after the command's output was written), and a process that abandons many
    readers grows by megabytes each (the fuzzer's, to gigabytes). Here Arrow only ever reads bytes in memory, one
    block that its reader takes whole. Not read_csv either: on Python 3.10 pyarrow 10 scans the interpreter's objects
    (gc.get_referrers) at each call, tens of milliseconds a block in `predict` (docs/benchmarks.md, "Hostile input").
    """
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    options = dict(
        # One Arrow block for each of ours (a block read here may end with the rest of the one before).
        read_options=pa_csv.ReadOptions(column_names=names, block_size=FAST_BLOCK_BYTES + 2 * MAX_LINE_BYTES),
        parse_options=pa_csv.ParseOptions(ignore_empty_lines=not keep_blank_lines),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() if name in text_columns else pa.float64() for name in columns},
            include_columns=columns,
            null_values=[""],
            quoted_strings_can_be_null=False,
        ),
    )
    rest = b""
    # The next block is read (gzip decompressed, the guard's checks) in a thread while Arrow parses this one, as its
    # streaming reader did: both release the interpreter's lock. A thread of Python's, joined when reading stops.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="csv-read") as reader:
        pending = reader.submit(stream.read, FAST_BLOCK_BYTES)
        while chunk := pending.result():
            pending = reader.submit(stream.read, FAST_BLOCK_BYTES)
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n") + 1  # Bounded keeps every line under MAX_LINE_BYTES: a block holds whole lines
            rest = data[cut:]
            if cut:
                yield from pa_csv.open_csv(pa.py_buffer(memoryview(data)[:cut]), **options)
    if rest:
        yield from pa_csv.open_csv(pa.py_buffer(rest), **options)
