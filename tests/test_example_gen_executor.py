"""CsvExampleGen's executor called directly on files made here (tfx-addons style): the fast reader, the fall back to
the careful one, and spans with a window."""

import glob
import json
import logging
import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

import contract
from components.example_gen.component import CsvExampleGen
from components.example_gen.executor import Executor
from components.lib import serving
from components.lib.rejection import DataRejectedError
from tests.support import FIXTURE, exec_properties, read_csv_rows, write_csv_rows


def _generate(tmp_path, input_base, pattern="*.csv*", split="time", span_pattern="", window=0):
    component = CsvExampleGen(str(input_base), pattern, split, span_pattern=span_pattern, window=window)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    executor = Executor()
    executor.Do({}, {"examples": [examples]}, exec_properties(component))
    return executor, examples


def _rows(examples, split) -> list[tf.train.Example]:
    files = glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_a_clean_file_is_read_fast_split_by_time_and_fingerprinted(tmp_path):
    executor, examples = _generate(tmp_path, FIXTURE.parent, FIXTURE.name)
    assert executor._careful is False
    header, *rows = read_csv_rows(FIXTURE)
    splits = {s: _rows(examples, s) for s in contract.SPLITS}
    assert sum(len(r) for r in splits.values()) == len(rows)
    # The time split: every eval row comes after every train row, every test row after every eval row.
    times = {s: [e.features.feature[contract.TIME].float_list.value[0] for e in r] for s, r in splits.items()}
    assert max(times["train"]) <= min(times["eval"]) and max(times["eval"]) <= min(times["test"])
    assert json.loads(examples.get_string_custom_property(contract.DATA_FILES_PROPERTY)) == [FIXTURE.name]
    fingerprint = serving.data_fingerprint([str(FIXTURE)], str(FIXTURE.parent))
    assert examples.get_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY) == fingerprint
    # gzip at level 1 (records.GZIP_LEVEL): zlib marks the fastest level in the header's XFL byte (4; 0 for level 6).
    for split in contract.SPLITS:
        for path in glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*.gz")):
            with open(path, "rb") as f:
                assert f.read(10)[8] == 4, path
    # The contract's types: features as floats, the label as an integer.
    first = splits["train"][0].features.feature
    assert first["V1"].WhichOneof("kind") == "float_list" and first[contract.LABEL].WhichOneof("kind") == "int64_list"


@pytest.mark.slow
def test_what_the_fast_reader_refuses_is_read_again_carefully(tmp_path, caplog):
    header, *rows = read_csv_rows(FIXTURE)
    rows[5][header.index("V3")] = "n/a"  # a cell that is not a number: the fast reader stops at it
    data = write_csv_rows(tmp_path / "data" / "part.csv", [header, *rows])
    with caplog.at_level(logging.WARNING):
        executor, examples = _generate(tmp_path, data.parent)
    assert executor._careful is True
    assert "reading again with the careful reader" in caplog.text
    # The careful reader keeps the column, as text, for the ExampleValidator to name.
    example = _rows(examples, "train")[0].features.feature
    assert example["V3"].WhichOneof("kind") == "bytes_list"
    assert sum(len(_rows(examples, s)) for s in contract.SPLITS) == len(rows)


def test_a_broken_row_is_named_by_file_and_line(tmp_path):
    header, *rows = read_csv_rows(FIXTURE)
    rows[3] = rows[3][:-2]
    data = write_csv_rows(tmp_path / "data" / "part.csv", [header, *rows])
    with pytest.raises(DataRejectedError, match=r"part.csv, line 5: 29 fields where the header has 31"):
        _generate(tmp_path, data.parent)


def test_spans_read_the_window_and_the_span_before_it(tmp_path):
    header, *rows = read_csv_rows(FIXTURE)
    rows.sort(key=lambda r: float(r[0]))
    third = len(rows) // 3
    for number, part in enumerate((rows[:third], rows[third : 2 * third], rows[2 * third :]), start=1):
        write_csv_rows(tmp_path / "feed" / f"span-{number:04d}" / "part.csv", [header, *part])
    _, examples = _generate(tmp_path, tmp_path / "feed", span_pattern="span-{SPAN}/*.csv", window=2)
    assert json.loads(examples.get_string_custom_property("spans")) == ["0002", "0003"]
    assert examples.get_string_custom_property("previous_span") == "0002" and examples.span == 3
    files = json.loads(examples.get_string_custom_property(contract.DATA_FILES_PROPERTY))
    assert files == ["span-0002/part.csv", "span-0003/part.csv"]
    assert sum(len(_rows(examples, s)) for s in contract.SPLITS) == len(rows) - third
    assert len(_rows(examples, contract.SPAN_NEWEST)) == len(rows) - 2 * third
    assert len(_rows(examples, contract.SPAN_PREVIOUS)) == third
