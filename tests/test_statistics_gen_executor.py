"""StatisticsGen's executor called directly: in process, its statistics are TFX's Beam executor's on the same
examples; and it hands the work to TFX's executor whenever the in-process result could differ."""

import os
from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.types import artifact_utils, channel, standard_artifacts
from tfx.utils import io_utils

import contract
from compat import tfdv as tfdv_compat
from components.example_gen.component import CsvExampleGen
from components.example_gen.executor import Executor as ExampleGenExecutor
from components.lib import examples_io
from components.statistics_gen import component as statistics_gen
from components.statistics_gen.component import Declined, StatisticsGen
from tests.support import FIXTURE, exec_properties, read_csv_rows, schema_artifact, write_csv_rows

SCHEMA_FILE = Path(contract.SCHEMA_FILE)
SCHEMA = text_format.Parse(SCHEMA_FILE.read_text(), schema_pb2.Schema())


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The fixture's rows through CsvExampleGen, with empty cells (missing values) in two columns."""
    tmp = tmp_path_factory.mktemp("statistics")
    header, *rows = read_csv_rows(FIXTURE)
    for row in rows[::7]:
        row[header.index("V3")] = ""
    for row in rows[::11]:
        row[header.index(contract.AMOUNT)] = ""
    data = write_csv_rows(tmp / "data" / "rows.csv", [header, *rows])
    component = CsvExampleGen(str(data.parent), data.name, "time")
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp / "examples")
    ExampleGenExecutor().Do({}, {"examples": [artifact]}, exec_properties(component))
    return artifact


def _run(executor_class, examples, tmp_path, name, beam_args=()):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / name)
    executor = executor_class(executor_class.Context(tmp_dir=str(tmp_path / f"{name}-tmp")))
    executor._beam_pipeline_args = list(beam_args)  # as TFX's executor keeps them (its constructor would also
    # package the project for Beam's workers, which these calls do not need)
    inputs = {"examples": [examples], "schema": [schema_artifact(tmp_path / "schema")]}
    executor.Do(
        inputs,
        {"statistics": [statistics]},
        exec_properties(StatisticsGen(examples=channel.Channel(type=standard_artifacts.Examples))),
    )
    return statistics


def _read(statistics, split) -> statistics_pb2.DatasetFeatureStatisticsList:
    path = os.path.join(artifact_utils.get_split_uri([statistics], split), tfx_executor.DEFAULT_FILE_NAME)
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(io_utils.read_bytes_file(path))


def _without_float_sums(result: statistics_pb2.DatasetFeatureStatisticsList):
    """The statistics with each mean and standard deviation taken out (returned apart): a float sum whose order
    depends on the batches, which differs in its last bits between two of TFX's own runs."""
    sums = {}
    for feature in result.datasets[0].features:
        if feature.HasField("num_stats"):
            sums[feature.path.step[0]] = (feature.num_stats.mean, feature.num_stats.std_dev)
            feature.num_stats.ClearField("mean")
            feature.num_stats.ClearField("std_dev")
    return result, sums


@pytest.mark.against_tfx
def test_in_process_statistics_are_tfx_beam_executors(examples, tmp_path, monkeypatch):
    stock = _run(tfx_executor.Executor, examples, tmp_path, "stock")
    calls = []
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda *a: calls.append(a))
    ours = _run(statistics_gen.Executor, examples, tmp_path, "ours")
    assert calls == []  # computed in process: TFX's executor did not run
    assert ours.split_names == stock.split_names
    for name in ("span", "split_names"):
        assert getattr(ours, name) == getattr(stock, name)
    for key in (tfx_executor.STATS_DASHBOARD_LINK, tfx_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME):
        assert json_format.MessageToDict(ours.mlmd_artifact.custom_properties[key]) == json_format.MessageToDict(
            stock.mlmd_artifact.custom_properties[key]
        )
    for split in contract.SPLITS:
        (a, a_sums), (b, b_sums) = _without_float_sums(_read(ours, split)), _without_float_sums(_read(stock, split))
        assert a.datasets[0].num_examples > 0
        assert a == b, split  # counts, missing values, histograms, quantiles, top values, feature order
        assert a_sums.keys() == b_sums.keys() == {f.name for f in SCHEMA.feature} - {contract.LABEL}
        for feature, (mean, std) in a_sums.items():
            assert mean == pytest.approx(b_sums[feature][0], rel=1e-12, abs=1e-12), feature
            assert std == pytest.approx(b_sums[feature][1], rel=1e-12), feature
    # The empty cells are counted as TFX counts them.
    v3 = next(f for f in _read(ours, "train").datasets[0].features if f.path.step == ["V3"])
    assert v3.num_stats.common_stats.num_missing == 0 and v3.num_stats.common_stats.min_num_values == 0


def test_another_runner_or_options_hand_the_work_to_tfx_executor(examples, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda self, *a: calls.append(self._beam_pipeline_args))
    for args in (["--direct_num_workers=2"], ["--runner=PortableRunner"], ["--direct_running_mode=multi_threading"]):
        _run(statistics_gen.Executor, examples, tmp_path, f"declined-{len(calls)}", args)
    assert len(calls) == 3
    assert examples_io.in_process_runner(["--notfxio_use_byte_size_batching", "--runner=DirectRunner"])


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, values in features.items():
        feature = example.features.feature[name]
        if values and isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif values and isinstance(values[0], int):
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.SetInParent()  # an empty list is a float_list without values
            feature.float_list.value.extend(values)
    return example.SerializeToString()


def _row(label=0, **changes) -> dict:
    row = {f.name: [0.5] for f in SCHEMA.feature}
    row[contract.LABEL] = [label]
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def _statistics_of(tmp_path, rows: list[dict]):
    path = str(tmp_path / "records.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(_example(**row))
    return statistics_gen.split_statistics([path], SCHEMA)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Extra": [1.0]}, "not exactly the schema's features"),  # a feature the schema does not have
        ({"V2": None}, None),  # a feature absent: a null, as tfx_bsl decodes it
        ({"V2": []}, None),  # a feature present without values: an empty list
        ({"V2": None, "V3": []}, "not exactly the schema's features"),  # one absent and one empty: which is which?
        ({"V2": [1.0, 2.0]}, None),  # two values: the schema's shape is the ExampleValidator's to judge
        ({"V2": [3]}, "not the schema's features"),  # an integer where the schema has a float
        ({"V2": [b"x"]}, "not the schema's features"),  # bytes where the schema has a float
        ({contract.LABEL: [-5]}, None),  # a negative integer: ten bytes as a varint
    ],
)
def test_records_that_are_not_the_schemas_features_are_left_to_tfx(change, reason, tmp_path):
    rows = [_row(), _row(label=1), _row(**change)]
    if reason is None:
        result = _statistics_of(tmp_path, rows)
        assert result.datasets[0].num_examples == 3
    else:
        with pytest.raises(Declined, match=reason):
            _statistics_of(tmp_path, rows)


ID_SCHEMA = text_format.Parse(
    """
    feature { name: "card" type: BYTES }
    feature { name: "country" type: BYTES }
    feature { name: "amount" type: FLOAT }
    feature { name: "label" type: INT int_domain { is_categorical: true min: 0 max: 1 } }
    """,
    schema_pb2.Schema(),
)


def _id_rows(count: int, seed: int) -> list[dict]:
    """Rows of a log with an id of thousands of values (far over TFDV's sketch of 1,024), counts tied at the top
    and in the tail, a text feature absent from some rows and a number absent from others."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        row = {"card": [f"C{rng.randrange(3000) if i % 3 else i % 40:05d}".encode()], "label": [int(i % 97 == 0)]}
        if i % 13:
            row["country"] = [rng.choice([b"FR", b"BE", b"NL", b"D\xc3\xa9", b"\xff\xfe"])]  # and not UTF-8
        if i % 7:
            row["amount"] = [rng.random() * 100]
        rows.append(row)
    return rows


def _examples_of(folder: Path, splits: dict[str, list[dict]]):
    """An Examples artifact of these rows a split, as ExampleGen lays it out (a gzipped TFRecord file a split)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(folder)
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    for split, rows in splits.items():
        (folder / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(folder / f"Split-{split}" / "data.gz"), options="GZIP") as writer:
            for row in rows:
                writer.write(_example(**row))
    return examples


@pytest.mark.against_tfx
def test_top_values_of_ids_of_thousands_of_values_are_tfx_beam_executors(tmp_path, monkeypatch):
    examples = _examples_of(tmp_path / "examples", {"train": _id_rows(9000, 1), "eval": _id_rows(2500, 2)})
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "schema.pbtxt").write_text(text_format.MessageToString(ID_SCHEMA))

    def run(executor_class, name):
        statistics = standard_artifacts.ExampleStatistics()
        statistics.uri = str(tmp_path / name)
        executor = executor_class(executor_class.Context(tmp_dir=str(tmp_path / f"{name}-tmp")))
        executor._beam_pipeline_args = []
        executor.Do(
            {"examples": [examples], "schema": [schema]},
            {"statistics": [statistics]},
            exec_properties(StatisticsGen(examples=channel.Channel(type=standard_artifacts.Examples))),
        )
        return statistics

    stock = run(tfx_executor.Executor, "stock")
    calls = []
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda *a: calls.append(a))
    ours = run(statistics_gen.Executor, "ours")
    assert calls == []  # computed in process
    for split in ("train", "eval"):
        (a, a_sums), (b, b_sums) = _without_float_sums(_read(ours, split)), _without_float_sums(_read(stock, split))
        features = {f.path.step[0]: f for f in a.datasets[0].features}
        assert features["card"].string_stats.unique > tfdv_compat.DISTINCT_IN_SKETCH
        assert features["country"].string_stats.common_stats.num_missing > 0
        assert a == b, split  # top values (ties broken as Beam's Top breaks them), uniques, rank histograms
        for feature, (mean, std) in a_sums.items():
            assert mean == pytest.approx(b_sums[feature][0], rel=1e-12, abs=1e-12), feature
            assert std == pytest.approx(b_sums[feature][1], rel=1e-12), feature


def test_an_empty_split_is_left_to_tfx(tmp_path):
    with pytest.raises(Declined, match="empty split"):
        _statistics_of(tmp_path, [])


def test_on_another_tfdv_a_categorical_feature_is_left_to_tfx(tmp_path, monkeypatch):
    monkeypatch.setattr(tfdv_compat, "exact_generators", lambda options: None)
    with pytest.raises(Declined, match="not counted exactly"):
        _statistics_of(tmp_path, [_row(label=i % 2) for i in range(10)])
