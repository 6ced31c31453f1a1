"""Unit tests of the CSV reader's typing rules and the time split's cuts."""

import gzip

import pyarrow as pa
import pytest
import tensorflow as tf

import contract
from components.example_gen import component, inputs, records, time_split
from components.lib import csv_contract
from components.lib.rejection import DataRejectedError
from datasets import spec as dataset_spec


def test_time_cuts_fall_at_the_cumulative_shares():
    quantiles = [float(q) for q in range(101)]  # 0..100: the value is the percentile
    assert time_split.time_cuts(quantiles, [0.64, 0.16, 0.20]) == [64.0, 80.0]
    assert time_split.time_cuts([], [0.64, 0.16, 0.20]) == []


@pytest.mark.parametrize(("time", "split"), [(0.0, 0), (63.9, 0), (64.0, 1), (79.9, 1), (80.0, 2), (1e9, 2), (None, 0)])
def test_time_partition(time, split):
    assert time_split.time_partition((time, b""), 3, [64.0, 80.0]) == split


def test_columns_are_typed_by_the_contract():
    combine = records.ColumnsParse(["Time", "V1", "Class", "V2"], ["float", "float", "int", "float"], ULB)
    acc = combine.create_accumulator()
    for cells in (["0", "1.5", "0", "x"], ["2", "", "1", "3"]):
        acc = combine.add_input(acc, cells)
    # Whole numbers stay floats for float features; a non-number makes the column bytes.
    assert combine.extract_output(acc) == ["float", "float", "int", "bytes"]
    example = records.to_example(["7", "", "1", "x"], ["Time", "V1", "Class", "V2"], ["float", "float", "int", "bytes"])
    feature = example.features.feature
    assert list(feature["Time"].float_list.value) == [7.0]
    assert list(feature["V1"].float_list.value) == []
    assert list(feature["Class"].int64_list.value) == [1]
    assert list(feature["V2"].bytes_list.value) == [b"x"]


def test_an_integral_float_label_is_an_int_and_a_fraction_is_not():
    combine = records.ColumnsParse(["Class"], ["int"], ULB)
    assert combine.extract_output(combine.add_input(combine.create_accumulator(), ["1.0"])) == ["int"]
    assert combine.extract_output(combine.add_input(combine.create_accumulator(), ["0.5"])) == ["bytes"]
    example = records.to_example(["1.0", "0.0"], ["Class", "Other"], ["int", "int"])
    assert list(example.features.feature["Class"].int64_list.value) == [1]
    assert list(example.features.feature["Other"].int64_list.value) == [0]


HEADER = ",".join(contract.RAW_COLUMNS)
ULB = contract.DEFAULT_DATASET


def _row(label="0", time="1"):
    return ",".join([time] + ["0.5"] * 29 + [label])


def _write(path, text: str, bom=False, gz=False):
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def _rows(path):
    header = csv_contract.read_header(path)
    label = header.index(contract.LABEL) if contract.LABEL in header else None
    return header, list(records.ReadCsvRows(len(header), label).process(path))


@pytest.mark.parametrize("gz", [False, True])
def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path, gz):
    path = _write(tmp_path / ("bom.csv.gz" if gz else "bom.csv"), f"{HEADER}\n{_row()}\n", bom=True, gz=gz)
    header, rows = _rows(path)
    assert header == list(contract.RAW_COLUMNS)
    assert len(rows) == 1


def test_pandas_float_labels_are_read(tmp_path):
    path = _write(tmp_path / "f.csv", f"{HEADER}\n{_row('0.0')}\n{_row('1.0')}\n")
    _, rows = _rows(path)
    assert [r[-1] for r in rows] == ["0.0", "1.0"]  # cells stay text here; _to_example reads them as 0 and 1


@pytest.mark.parametrize(
    ("name", "text", "gz", "words"),
    [
        ("empty.csv", "", False, "is empty"),
        ("blank.csv", "\n", False, "is empty"),
        ("fraction.csv", f"{HEADER}\n{_row()}\n{_row('0.5')}\n", False, "line 3: Class is '0.5'; it must be 0 or 1"),
        ("ragged.csv", f"{HEADER}\n{_row()}\n1,2,3\n", False, "line 3: 3 fields where the header has 31"),
    ],
)
def test_unusable_input_is_rejected_naming_file_and_line(tmp_path, name, text, gz, words):
    path = _write(tmp_path / name, text, gz=gz)
    with pytest.raises(DataRejectedError) as caught:
        _rows(path)
    assert str(caught.value).startswith(path) and words in str(caught.value)


def test_a_truncated_gzip_file_says_so(tmp_path):
    whole = gzip.compress((HEADER + "\n" + "\n".join(_row(time=str(t)) for t in range(3000)) + "\n").encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataRejectedError, match=r"cut\.csv\.gz is not a complete gzip file"):
        _rows(str(path))
    (tmp_path / "notgz.csv.gz").write_bytes(b"Time,V1\n1,2\n")
    with pytest.raises(DataRejectedError, match="is not a complete gzip file"):
        _rows(str(tmp_path / "notgz.csv.gz"))


def test_text_that_is_not_utf8_is_rejected(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\n{_row()}\n".encode() + b"caf\xe9\n")
    with pytest.raises(DataRejectedError, match="line 3: not UTF-8"):
        _rows(str(path))


@pytest.mark.parametrize("scheme", contract.SPLIT_SCHEMES)
def test_split_scheme_round_trips_through_exec_properties(scheme):
    from google.protobuf import json_format

    config = component.split_custom_config(scheme)
    assert inputs.split_scheme({"custom_config": json_format.MessageToJson(config)}) == scheme


def test_unknown_split_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown split scheme"):
        component.split_custom_config("alphabetical")


def _careful(path):
    """What the careful reader makes of a file: (Time, example) per row, columns typed over the whole file."""
    header, rows = _rows(path)
    combine = records.ColumnsParse(header, [records.contract_type(n) for n in header], ULB)
    kinds = combine.extract_output(combine.merge_accumulators([_fold(combine, rows)]))
    return [records.timed_record(records.to_example(cells, header, kinds)) for cells in rows]


def _fold(combine, rows):
    acc = combine.create_accumulator()
    for cells in rows:
        acc = combine.add_input(acc, cells)
    return acc


def _fast(path):
    return list(records.fast_records(path, csv_contract.read_header(path)))


def _parsed(records):
    return [(time, tf.train.Example.FromString(record)) for time, record in records]


@pytest.mark.parametrize("gz", [False, True])
def test_the_fast_reader_gives_the_careful_readers_examples(tmp_path, gz):
    # Awkward but well-formed: a byte order mark, pandas' float labels, an empty cell, values float32 cannot hold
    # exactly, a quoted number, a space before a number, a blank line and no newline at the end.
    rows = [
        _row("0", time="0"),
        _row("1.0", time="17.5").replace("0.5", "0.1234567891234", 1),
        _row("0", time="3").replace("0.5", "", 1),
        "",
        _row("0.0", time="1e5").replace("0.5", '"-2.5"', 1),
        _row("1", time=" 172792"),
    ]
    path = _write(tmp_path / ("ok.csv.gz" if gz else "ok.csv"), HEADER + "\n" + "\n".join(rows), bom=True, gz=gz)
    fast, careful = _parsed(_fast(path)), _parsed(_careful(path))
    assert len(fast) == 5
    assert fast == careful
    assert [t for t, _ in fast] == [0.0, 17.5, 3.0, 1e5, 172792.0]
    # The Time-only pass (for the time split's cuts) gives the same values.
    assert list(records.fast_times(path, csv_contract.read_header(path))) == [t for t, _ in fast]
    assert list(fast[1][1].features.feature["V1"].float_list.value) == pytest.approx([0.1234567891234])
    assert list(fast[2][1].features.feature["V1"].float_list.value) == []  # the empty cell: no value
    assert [e.features.feature[contract.LABEL].int64_list.value[0] for _, e in fast] == [0, 1, 0, 0, 1]


def test_the_fast_reader_reads_across_its_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_contract, "FAST_BLOCK_BYTES", 4096)  # many blocks of about 20 rows
    path = _write(tmp_path / "many.csv", HEADER + "\n" + "\n".join(_row(str(t % 2), str(t)) for t in range(1000)))
    fast = _fast(path)
    assert [t for t, _ in fast] == [float(t) for t in range(1000)]
    assert list(records.fast_times(path, csv_contract.read_header(path))) == [float(t) for t in range(1000)]
    assert _parsed(fast) == _parsed(_careful(path))


@pytest.mark.parametrize(
    ("name", "text", "careful"),
    [
        ("fraction.csv", f"{HEADER}\n{_row()}\n{_row('0.5')}\n", "line 3: Class is '0.5'"),
        ("ragged.csv", f"{HEADER}\n{_row()}\n1,2,3\n", "line 3: 3 fields"),
        ("word.csv", f"{HEADER}\n{_row()}\n{_row('fraud')}\n", "bytes"),
        ("underscore.csv", f"{HEADER}\n{_row(time='1_000')}\n", "float"),
    ],
)
def test_the_fast_reader_hands_what_it_does_not_accept_to_the_careful_one(tmp_path, name, text, careful):
    path = _write(tmp_path / name, text)
    with pytest.raises(csv_contract.FastReaderRefusedError, match=name):
        _fast(path)
    if careful in ("bytes", "float"):
        # The careful reader keeps a word as bytes (for the ExampleValidator to report); Python reads 1_000 as 1000.
        (_, last), *_ = _parsed(_careful(path)[-1:])
        kind = "bytes_list" if name == "word.csv" else "float_list"
        assert last.features.feature[contract.LABEL if name == "word.csv" else contract.TIME].HasField(kind)
    else:
        with pytest.raises(DataRejectedError, match=careful):
            _careful(path)


def test_the_fast_reader_refuses_broken_bytes(tmp_path):
    whole = gzip.compress((HEADER + "\n" + "\n".join(_row(time=str(t)) for t in range(3000)) + "\n").encode())
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "latin1.csv").write_bytes(f"{HEADER}\n{_row()}\n".encode() + b"caf\xe9\n")
    for name in ("cut.csv.gz", "latin1.csv"):
        with pytest.raises(csv_contract.FastReaderRefusedError):
            list(records.fast_records(str(tmp_path / name), list(contract.RAW_COLUMNS)))


def _careful_spec(path, spec):
    header, rows = _rows(path)
    combine = records.ColumnsParse(header, [records.contract_type(n, spec) for n in header], spec)
    kinds = combine.extract_output(combine.merge_accumulators([_fold(combine, rows)]))
    return [records.timed_record(records.to_example(cells, header, kinds, spec), spec.time) for cells in rows]


def _sorted_features(parsed):
    """(time, the example's features as sorted (name, values)): a writer may put a map's entries in any order."""
    return [
        (
            time,
            sorted(
                (n, (*f.float_list.value, *f.int64_list.value, *f.bytes_list.value))
                for n, f in e.features.feature.items()
            ),
        )
        for time, e in parsed
    ]


def test_the_fast_reader_reads_a_spec_with_text_columns_as_the_careful_one_does(tmp_path):
    """The simulated log: ids, categories, a text label, ISO date-times with Z, a few percent of empty cells, some
    quoted; the Arrow path gives the careful reader's examples, and its time pass the same times."""
    from datasets.simulated import simulator

    spec = dataset_spec.load(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml")
    path = str(tmp_path / "log.csv.gz")
    simulator.write(simulator.Settings(days=10, customers=150, terminals=40, seed=1), path)
    text = gzip.open(path, "rt").read().splitlines()
    # A quoted text cell, a space separating date and time, a category with a comma inside quotes.
    text[1] = text[1].replace(",online,", ',"online",', 1)
    text[2] = text[2].replace("T", " ", 1)
    text[3] = text[3].replace(",grocery,", ',"groc,ery",', 1)
    (tmp_path / "edited.csv").write_text("\n".join(text) + "\n")
    path = str(tmp_path / "edited.csv")
    names = csv_contract.read_header(path)
    fast = _parsed(list(records.fast_records(path, names, spec)))
    careful = _parsed(_careful_spec(path, spec))
    assert len(fast) == len(text) - 1 > 1000
    assert _sorted_features(fast) == _sorted_features(careful)
    assert list(records.fast_times(path, names, spec)) == [t for t, _ in fast]
    # Empty cells are absent features, as the careful reader leaves them.
    missing = sum(not e.features.feature["merchant_category"].bytes_list.value for _, e in fast)
    assert missing > 0 and fast[0][1].features.feature["label"].int64_list.value[0] in (0, 1)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("Z,", "+02:00,", "ISO-8601"),  # an offset: time_of converts it, the fast reader does not
        (",legit", ",maybe", "neither"),  # a label that is neither value
        (",C0", ",C0", None),  # nothing changed: read fast
    ],
)
def test_the_fast_reader_hands_a_spec_file_it_cannot_read_exactly_to_the_careful_one(tmp_path, old, new, why):
    from datasets.simulated import simulator

    spec = dataset_spec.load(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml")
    path = str(tmp_path / "log.csv")
    simulator.write(simulator.Settings(days=3, customers=40, terminals=10, seed=1), path)
    lines = open(path).read().splitlines()
    lines[5] = lines[5].replace(old, new, 1)
    open(path, "w").write("\n".join(lines) + "\n")
    names = csv_contract.read_header(path)
    if why is None:
        assert len(list(records.fast_records(path, names, spec))) == len(lines) - 1
        return
    with pytest.raises(csv_contract.FastReaderRefusedError, match=why):
        list(records.fast_records(path, names, spec))


def test_a_blocks_times_are_one_value_a_row_none_where_a_row_has_none():
    whole = pa.array([[0.0], [17.5], [3.0]], pa.large_list(pa.float32()))
    assert records._block_times(whole) == [0.0, 17.5, 3.0]
    # An empty cell (an empty list) and a row without the feature (a null) have no Time; the others keep theirs.
    gaps = pa.array([[0.0], [], None, [2.5]], pa.large_list(pa.float32()))
    assert records._block_times(gaps) == [0.0, None, None, 2.5]
    # A slice of a column (an offset into its values) reads its own rows.
    assert records._block_times(whole.slice(1)) == [17.5, 3.0]
