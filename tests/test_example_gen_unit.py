"""Unit tests of the CSV reader's typing rules and the time split's cuts."""

import pytest
import tensorflow as tf

import contract
from components import example_gen


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


def test_label_with_a_fraction_is_not_an_int():
    combine = example_gen._ColumnsParse(["int"])
    assert combine.extract_output(combine.add_input(combine.create_accumulator(), ["1.0"])) == ["bytes"]


@pytest.mark.parametrize("scheme", contract.SPLIT_SCHEMES)
def test_split_scheme_round_trips_through_exec_properties(scheme):
    from google.protobuf import json_format

    config = example_gen.split_custom_config(scheme)
    assert example_gen._split_scheme({"custom_config": json_format.MessageToJson(config)}) == scheme


def test_unknown_split_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown split scheme"):
        example_gen.split_custom_config("alphabetical")
