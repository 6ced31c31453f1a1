"""Unit tests of the CSV reader's typing rules and the time split's cuts."""

import gzip

import pytest
import tensorflow as tf

import contract
from components import example_gen
from components.rejection import DataRejectedError


def _example(time):
    example = tf.train.Example()
    if time is not None:
        example.features.feature[contract.TIME].float_list.value.append(time)
    return example


def test_time_cuts_fall_at_the_cumulative_shares():
    quantiles = [float(q) for q in range(101)]  # 0..100: the value is the percentile
    assert example_gen._time_cuts(quantiles, [0.64, 0.16, 0.20]) == [64.0, 80.0]
    assert example_gen._time_cuts([], [0.64, 0.16, 0.20]) == []


@pytest.mark.parametrize(("time", "split"), [(0.0, 0), (63.9, 0), (64.0, 1), (79.9, 1), (80.0, 2), (1e9, 2), (None, 0)])
def test_time_partition(time, split):
    assert example_gen._time_partition(_example(time), 3, [64.0, 80.0]) == split


def test_columns_are_typed_by_the_contract():
    combine = example_gen._ColumnsParse(["float", "float", "int", "float"])
    acc = combine.create_accumulator()
    for cells in (["0", "1.5", "0", "x"], ["2", "", "1", "3"]):
        acc = combine.add_input(acc, cells)
    # Whole numbers stay floats for float features; a non-number makes the column bytes.
    assert combine.extract_output(acc) == ["float", "float", "int", "bytes"]
    example = example_gen._to_example(
        ["7", "", "1", "x"], ["Time", "V1", "Class", "V2"], ["float", "float", "int", "bytes"]
    )
    feature = example.features.feature
    assert list(feature["Time"].float_list.value) == [7.0]
    assert list(feature["V1"].float_list.value) == []
    assert list(feature["Class"].int64_list.value) == [1]
    assert list(feature["V2"].bytes_list.value) == [b"x"]


def test_an_integral_float_label_is_an_int_and_a_fraction_is_not():
    combine = example_gen._ColumnsParse(["int"])
    assert combine.extract_output(combine.add_input(combine.create_accumulator(), ["1.0"])) == ["int"]
    assert combine.extract_output(combine.add_input(combine.create_accumulator(), ["0.5"])) == ["bytes"]
    example = example_gen._to_example(["1.0", "0.0"], ["Class", "Other"], ["int", "int"])
    assert list(example.features.feature["Class"].int64_list.value) == [1]
    assert list(example.features.feature["Other"].int64_list.value) == [0]


HEADER = ",".join(contract.RAW_COLUMNS)


def _row(label="0", time="1"):
    return ",".join([time] + ["0.5"] * 29 + [label])


def _write(path, text: str, bom=False, gz=False):
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def _rows(path):
    header = example_gen._read_header(path)
    label = header.index(contract.LABEL) if contract.LABEL in header else None
    return header, list(example_gen._ReadCsvRows(len(header), label).process(path))


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

    config = example_gen.split_custom_config(scheme)
    assert example_gen._split_scheme({"custom_config": json_format.MessageToJson(config)}) == scheme


def test_unknown_split_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown split scheme"):
        example_gen.split_custom_config("alphabetical")
