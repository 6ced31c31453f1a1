"""What the fuzzer (tests/fuzz/csv_contract.py) and its regression tests do with one input: make a file of it and
read it as every command reads a file a user gives.

An input's first byte says how to make the file:
  bit 0: gzip-compress the bytes (the name ends in .csv.gz);
  bit 1: the bytes are the gzip stream themselves (gzip framing fuzzed; the name ends in .csv.gz);
  bit 2: put the contract's header line before the bytes (rows are reached without guessing 31 names);
  bit 3: name the file after the input's second part (after the first 0xFF byte): file-name handling;
  bits 4-7: repeat the bytes' last (second byte % 16 + 1) bytes 4**k times, at most MAX_FILE_BYTES (a short input
    makes a line of megabytes, or a gzip bomb).
"""

import contextlib
import gzip
import os
import tempfile

import contract
from components.lib import csv_contract
from components.lib.csv_contract import FastReaderRefusedError
from components.lib.rejection import DataRejectedError
from pipeline.cli.data import data_files, data_input
from pipeline.scoring import rows

MAX_FILE_BYTES = 8 << 20
HEADER = ",".join(contract.RAW_COLUMNS).encode() + b"\n"
_folder = tempfile.mkdtemp(prefix="fraud-fuzz-")


def _name(raw: bytes, gz: bool) -> str:
    """A file name from the input's bytes: any byte but '/' and NUL, as the file system takes it."""
    text = raw.replace(b"/", b"_").replace(b"\0", b"_")[:80].decode("utf-8", "surrogateescape").strip()
    if text in ("", ".", ".."):
        text = "data"
    return text + (".csv.gz" if gz else ".csv")


def make_file(data: bytes) -> str:
    """The file an input describes (see the module's docstring), in a private temporary folder; returns its path."""
    flags = data[0] if data else 0
    body, _, name_part = data[1:].partition(b"\xff") if flags & 8 else (data[1:], b"", b"")
    repeat = flags >> 4
    if repeat and body:
        tail = body[-(body[0] % 16 + 1) :]
        times = min(4**repeat, MAX_FILE_BYTES // max(len(tail), 1))
        body = body + tail * times
    if flags & 4:
        body = HEADER + body
    gz = bool(flags & 3)
    if flags & 1 and not flags & 2:
        body = gzip.compress(body, compresslevel=1, mtime=0)
    for old in os.listdir(_folder):
        os.remove(os.path.join(_folder, old))
    path = os.path.join(_folder, _name(name_part, gz) if flags & 8 else ("input.csv.gz" if gz else "input.csv"))
    with open(path, "wb") as f:
        f.write(body)
    if flags & 8:
        # A decoy the name would match if it were taken as a pattern ('a[1].csv' matches 'a1.csv').
        decoy = os.path.join(_folder, "decoy.csv")
        if decoy != path:
            with open(decoy, "wb") as f:
                f.write(HEADER)
    return path


def _read_all(iterable) -> None:
    for _ in iterable:
        pass


def exercise(data: bytes) -> bool:
    """Reads the input's file every way a command does; True when any reader refused it as data (the contract at
    work). Anything but DataRejectedError (and the fast readers' FastReaderRefusedError, which hands over to the
    careful reader) propagates: a finding."""
    path = make_file(data)
    refused = False
    if (data[0] if data else 0) & 8:
        chosen = data_files(data_input(path), 0)
        if chosen != [path]:
            raise AssertionError(f"--data {path!r} reads {chosen!r}, not that file alone")
    from components.example_gen import records  # imported once, after atheris instrumented the project's modules

    def header():
        return csv_contract.read_header(path)

    def training():
        # CsvExampleGen's order: its executor's checks first, then the fast reader (and, when it refuses, the
        # careful one).
        csv_contract.check_training_files([path])
        try:
            _read_all(records.fast_blocks(path, header()))
        except FastReaderRefusedError:
            pass
        _read_all(csv_contract.checked_rows(path, len(header()), None))

    readers = (
        training,
        lambda: _read_all(rows.batches([path], rows.Rejects(None))),
        lambda: _read_all(rows.batches([path], _devnull_rejects())),
    )
    for read in readers:
        try:
            read()
        except DataRejectedError:
            refused = True
    return refused


def _devnull_rejects() -> rows.Rejects:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(_folder, "rejects"))
    return rows.Rejects(os.path.join(_folder, "rejects"))
