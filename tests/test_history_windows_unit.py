"""History windows (datasets.spec.History): their semantics pinned on hand-made rows, the spec's checks, and the
Beam step of ExampleGen against a brute-force reference on a simulated log."""

import gzip
import itertools

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.example_gen.history import AddHistory, with_entries
from components.example_gen.records import to_example
from components.lib import csv_contract, examples_io
from components.lib.wire import field, read_varint, varint
from datasets import history as history_lib
from datasets import spec as dataset_spec
from datasets.simulated import simulator
from datasets.spec import History, SpecError

HOUR, DAY = 3600, 86400
CARD = History(entity="card", windows=("1h", "1d"), aggregates=("count", "sum", "mean", "ratio_to_mean"), value="a")
TERMINAL = History(entity="terminal", windows=("1d",), aggregates=("count", "fraud_rate"), delay="1d", empty=-1.0)


def test_a_window_holds_the_earlier_rows_after_its_start_and_the_row_itself():
    times = np.array([0, 1800, HOUR, HOUR, 2 * HOUR, 25 * HOUR], dtype=float)
    amounts = np.array([10, 20, 30, 40, 50, 60], dtype=float)
    out = history_lib.windows(CARD, times, amounts, np.zeros(6))
    # The first row: only itself.
    assert out["card_count_1h"][0] == 1 and out["card_mean_a_1h"][0] == 10 and out["card_ratio_to_mean_a_1h"][0] == 1
    # At 1 h: the row at 0 is on the window's open start (excluded), the other row at 1 h is at the same second
    # (which came first is not known: excluded); 1800 and the row itself are in.
    assert list(out["card_count_1h"][2:4]) == [2, 2]
    assert list(out["card_sum_a_1h"][2:4]) == [50, 60] and list(out["card_mean_a_1h"][2:4]) == [25, 30]
    assert out["card_ratio_to_mean_a_1h"][3] == pytest.approx(40 / 30, rel=1e-15)
    # At 2 h: nothing after 1 h in the last hour, the four earlier rows in the day.
    assert out["card_count_1h"][4] == 1 and out["card_count_1d"][4] == 5 and out["card_sum_a_1d"][4] == 150
    # At 25 h: the day's window starts after 1 h, so only the row at 2 h and itself.
    assert out["card_count_1d"][5] == 2 and out["card_mean_a_1d"][5] == 55


def test_a_delayed_window_ends_the_delay_before_the_row_and_counts_known_frauds():
    times = np.array([0, HOUR, DAY, DAY + HOUR, 2 * DAY], dtype=float)
    labels = np.array([1, 0, 0, 1, 0])
    out = history_lib.windows(TERMINAL, times, np.zeros(5), labels)
    # (t - 2 d, t - 1 d]: the row at 0 has nothing before it (the declared empty value), the row at 1 d has the row
    # at 0 (its end included), the row at 1 d + 1 h the rows at 0 and 1 h, the row at 2 d those at 1 h and 1 d.
    assert list(out["terminal_count_1d"]) == [0, 0, 1, 2, 2]
    assert list(out["terminal_fraud_rate_1d"]) == [-1.0, -1.0, 1.0, 0.5, 0.0]
    # The row's own label is never in its windows, nor a label known only later.
    assert (
        history_lib.windows(TERMINAL, times, np.zeros(5), np.array([0, 0, 0, 0, 1]))["terminal_fraud_rate_1d"][4] == 0.0
    )


@pytest.mark.parametrize("item", [CARD, TERMINAL], ids=["card", "terminal"])
def test_one_rows_finish_in_python_floats_is_the_arrays_finish_to_the_last_bit(item):
    """finish_row (what the online store serves a row with) against finish (what training computes): random partial
    sums and values, and the edges (no rows, a zero mean, a missing value)."""
    rng = np.random.default_rng(5)
    cases = [
        (0, 0.0, 0, 3.0),
        (2, 0.0, 0, 0.0),
        (3, -7.5, 1, 7.5),
        (0, 0.0, 0, float("nan")),
        (4, 10.0, 2, float("nan")),
    ]
    cases += [
        (int(n), float(t), int(f), float(v))
        for n, t, f, v in zip(
            rng.integers(0, 50, 200), rng.normal(0, 1e3, 200), rng.integers(0, 5, 200), rng.lognormal(3, 2, 200)
        )
    ]
    for rows, total, frauds, value in cases:
        frauds = min(frauds, rows)
        partials = {
            w: history_lib.Partials(np.array([rows]), np.array([total]), np.array([frauds])) for w in item.windows
        }
        expected = history_lib.finish(item, partials, np.array([value]))
        got = history_lib.finish_row(item, {w: (rows, total, frauds) for w in item.windows}, value)
        assert list(got) == list(expected)
        for name, array in expected.items():
            want = float(array[0])
            assert got[name] == want or (got[name] != got[name] and want != want), (name, rows, total, value)
            assert np.float64(got[name]).tobytes() == np.float64(want).tobytes() or want != want


def test_a_row_without_its_entity_gets_zero_counts_and_the_empty_value():
    assert history_lib.missing(TERMINAL) == {"terminal_count_1d": 0.0, "terminal_fraud_rate_1d": -1.0}
    assert history_lib.missing(CARD)["card_sum_a_1h"] == 0.0 and history_lib.missing(CARD)["card_mean_a_1d"] == 0.0


BASE = """
name: t
label: {column: y, positive: "1"}
time: {column: t, format: seconds}
key: id
entities: [card]
numeric: [a, {name: b, missing: impute}]
categorical: [{name: shop, top_k: 3}]
"""


def _spec(tmp_path, history: str):
    path = tmp_path / "dataset.yaml"
    path.write_text(BASE + history)
    return dataset_spec.load(str(path))


@pytest.mark.parametrize(
    "history, field",
    [
        ("history: [{entity: nope, windows: [1d], aggregates: [count]}]", r"history\[0\].entity: 'nope'"),
        ("history: [{entity: card, windows: [1x], aggregates: [count]}]", r"history\[0\].windows\[0\]"),
        ("history: [{entity: card, windows: [1d, 24h], aggregates: [count]}]", r"history\[0\].windows: names"),
        ("history: [{entity: card, windows: [1d], aggregates: [median]}]", r"history\[0\].aggregates\[0\]"),
        ("history: [{entity: card, windows: [1d], aggregates: [fraud_rate]}]", r"history\[0\].delay: is required"),
        ("history: [{entity: card, windows: [1d], aggregates: [mean]}]", r"history\[0\].value: is required"),
        ("history: [{entity: card, windows: [1d], aggregates: [mean], value: b}]", r"history\[0\].value: 'b' may"),
        ("history: [{entity: card, windows: [1d], aggregates: [mean], value: zz}]", r"history\[0\].value: 'zz'"),
        ("history: [{entity: card, windows: [1d], aggregates: [count], when: 1}]", r"history\[0\] has fields"),
        ("history: [{entity: card, windows: [], aggregates: [count]}]", r"history\[0\].windows: needs"),
        ("history: [{entity: shop, windows: [1d], aggregates: [count]}]\nnumeric: [a, shop_count_1d]", "already"),
        ("online_store: mysql://x", "online_store: must be a postgresql"),
    ],
)
def test_a_history_section_that_is_not_well_formed_names_its_field(tmp_path, history, field):
    with pytest.raises(SpecError, match=field):
        _spec(tmp_path, history)


def test_a_history_section_adds_model_inputs_but_no_columns(tmp_path):
    spec = _spec(tmp_path, "history: [{entity: shop, windows: [1h, 7d], aggregates: [count, fraud_rate], delay: 7d}]")
    assert spec.history_features == ("shop_count_1h", "shop_fraud_rate_1h", "shop_count_7d", "shop_fraud_rate_7d")
    assert spec.columns == ("t", "id", "card", "a", "b", "shop", "y")
    assert spec.model_features[2:6] == spec.history_features and spec.input_features == ("a", "b", "shop")
    assert spec.history_span == 14 * DAY
    assert dataset_spec.from_json(spec.to_json()) == spec
    # The fraud rate needs the key that labels join on at serving.
    with pytest.raises(SpecError, match="fraud_rate needs the spec's key"):
        dataset_spec.parse({**{k: v for k, v in spec.to_dict().items() if k != "key"}, "key": ""}, "x")


# -- the Beam step against a brute-force reference --------------------------------------------------------------


def _brute(item: History, rows: list[dict], time: str, label: str) -> list[dict]:
    """Each row's windows by scanning every other row (no sorting, no prefix sums)."""
    out = []
    for row in rows:
        t, entity = row[time], row[item.entity]
        values = {}
        for name, aggregate, window in item.features:
            w = dataset_spec.duration_seconds(window)
            if not entity:
                values[name] = history_lib.missing(item)[name]
                continue
            d = item.delay_seconds
            if d:
                inside = [r for r in rows if r[item.entity] == entity and t - d - w < r[time] <= t - d]
            else:
                inside = [r for r in rows if r[item.entity] == entity and t - w < r[time] < t] + [row]
            n = len(inside)
            total = sum(r[item.value] for r in inside) if item.value else 0.0
            if aggregate == "count":
                values[name] = float(n)
            elif aggregate == "mean":
                values[name] = total / n if n else item.empty
            elif aggregate == "fraud_rate":
                values[name] = sum(r[label] for r in inside) / n if n else item.empty
        out.append(values)
    return out


@pytest.mark.slow
def test_the_beam_step_equals_a_brute_force_scan_and_drops_the_context_rows(tmp_path):
    spec = dataset_spec.load(str(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"))
    path = str(tmp_path / "log.csv.gz")
    simulator.write(simulator.Settings(days=40, customers=40, terminals=12, seed=5), path)
    names = csv_contract.read_header(path)
    cells = [c for _, c in itertools.islice(csv_contract.careful_rows(path), 3000)]
    kinds = [spec.example_kind(n) for n in names]
    examples = [to_example(c, names, kinds, spec) for c in cells]
    keep = []  # which rows are kept (not an older span's), by the blocks below

    def first(example, name):
        f = example.features.feature[name]
        values = f.float_list.value or f.int64_list.value or f.bytes_list.value
        return values[0] if values else None

    rows = [
        {
            "t": float(first(e, spec.time)),
            "customer_id": first(e, "customer_id"),
            "terminal_id": first(e, "terminal_id"),
            "amount": float(np.float32(first(e, "amount"))),
            "y": first(e, spec.label),
            "id": first(e, spec.key),
        }
        for e in examples
    ]
    expected = {}
    for item in spec.history:
        for row, values in zip(rows, _brute(item, rows, "t", "y")):
            expected.setdefault(row["id"], {}).update(values)
    assert any(v["terminal_id_fraud_rate_30d"] > 0 for v in expected.values())  # the log has known frauds to count

    def check(outputs):
        got = {}
        for serialized in outputs:
            example = tf.train.Example.FromString(serialized)
            # One message, the windows' entries in its features (two concatenated Examples would be longer).
            assert len(serialized) == example.ByteSize()
            got[first(example, spec.key)] = {n: first(example, n) for n in spec.history_features}
        # As the examples' fast reader decodes them (StatisticsGen, Transform): the schema's features, exactly.
        schema = text_format.Parse(open(spec.schema_path).read(), schema_pb2.Schema())
        assert examples_io.ExampleDecoder(schema).decode(tf.constant(outputs)).num_rows == len(outputs)
        kept_ids = {row["id"] for row, k in zip(rows, keep) if k}
        assert set(got) == kept_ids
        for key, values in got.items():
            for name, value in values.items():
                # float32 in the example: equal to the reference rounded the same way.
                assert value == np.float32(expected[key][name]), (key, name, value, expected[key][name])

    # Blocks of 250 rows, every fifth block only history (an older span's), as the readers hand them over.
    serialized = [e.SerializeToString() for e in examples]
    blocks = [(serialized[i : i + 250], (i // 250) % 5 != 4) for i in range(0, len(serialized), 250)]
    keep[:] = [k for records, k in blocks for _ in records]
    with beam.Pipeline() as pipeline:
        out = pipeline | beam.Create(blocks) | AddHistory(spec) | beam.FlatMap(lambda block: block[1])
        assert_that(out, check)


def test_a_varint_reads_back_as_written_and_one_cut_short_is_refused():
    for n in (0, 1, 127, 128, 300, 16384, 2**63 - 1, 2**64 - 1):
        assert read_varint(b"x" + varint(n) + b"y", 1) == (n, 1 + len(varint(n)))
    with pytest.raises(ValueError, match="cut short"):
        read_varint(varint(300)[:1], 0)


@pytest.mark.parametrize(
    "example",
    [
        {},  # no features: an empty record
        {"a": [b"x" * 200]},  # a length of two bytes as a varint
        {"a": [b"x" * 20000], "b": [1.5]},  # three bytes
    ],
)
def test_entries_added_in_place_parse_as_the_two_merged(example):
    record = tf.train.Example()
    for name, values in example.items():
        if isinstance(values[0], bytes):
            record.features.feature[name].bytes_list.value.extend(values)
        else:
            record.features.feature[name].float_list.value.extend(values)
    extra = tf.train.Example()
    extra.features.feature["h"].float_list.value.append(2.0)
    entries = extra.SerializeToString()[2:]  # the features' entries, without Example's field header
    merged = with_entries(record.SerializeToString(), entries)
    expected = tf.train.Example.FromString(record.SerializeToString() + extra.SerializeToString())
    assert tf.train.Example.FromString(merged) == expected and len(merged) == expected.ByteSize()
    # A record of another layout (not one features field) gets a second message: still the two merged.
    other = record.SerializeToString() + field(1, b"")
    assert tf.train.Example.FromString(with_entries(other, entries)) == expected


@pytest.mark.slow
def test_a_span_reads_the_older_spans_its_history_reaches_and_gets_a_continuous_historys_values(tmp_path):
    """Spans of 10 days each: the newest span's rows get the same windows whether the older spans are read as
    context or as data, and only the spans within the reach (30 d + 7 d) before it are read."""
    import csv as csv_module

    from components.example_gen import inputs
    from components.example_gen.records import CsvToTimedRecords, records_of
    from components.lib import spans as spans_lib

    spec = dataset_spec.load(str(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"))
    path = str(tmp_path / "log.csv.gz")
    simulator.write(simulator.Settings(days=60, customers=20, terminals=8, seed=2), path)
    rows = list(csv_module.reader(gzip.open(path, "rt")))
    header, body = rows[0], rows[1:]
    files = []
    for span in range(6):
        part = [r for r in body if _span_of(r[1]) == span]
        file = tmp_path / f"span-{span:04d}.csv"
        with open(file, "w", newline="") as f:
            csv_module.writer(f).writerows([header, *part])
        files.append(str(file))
    found = [spans_lib.Span(i, f"{i:04d}", (f,)) for i, f in enumerate(files)]
    selection = inputs.SpanSelection("span-{SPAN}.csv", found[-1:], found[-2], tuple(found))
    properties = {inputs._SELECTION_KEY: selection}
    context = inputs.context_files(properties, [files[-1]], spec)
    # 37 days of reach before day 50 starts: the spans starting on days 40, 30, 20 and 10 (which starts before 13).
    assert context == files[1:5]
    assert inputs.context_files(properties, [files[0]], spec) == []  # the oldest span has no history before it
    assert inputs.context_files({inputs._SELECTION_KEY: None}, files, spec) == []

    def newest_features(read):
        prefix = str(tmp_path / f"out-{len(read._context)}")
        with beam.Pipeline() as pipeline:
            _ = pipeline | read | beam.FlatMap(records_of) | beam.io.WriteToTFRecord(prefix)
        out = {}
        for raw in tf.data.TFRecordDataset(tf.io.gfile.glob(prefix + "*")).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            key = example.features.feature[spec.key].bytes_list.value[0]
            out[key] = [example.features.feature[n].float_list.value[0] for n in spec.history_features]
        return out

    as_span = newest_features(CsvToTimedRecords([files[-1]], True, spec=spec, context=context))
    continuous = newest_features(CsvToTimedRecords(files, True, spec=spec))
    assert as_span and set(as_span) < set(continuous)
    assert all(as_span[k] == continuous[k] for k in as_span)
    alone = newest_features(CsvToTimedRecords([files[-1]], True, spec=spec, context=[]))
    assert any(alone[k] != continuous[k] for k in alone)  # without the context the windows would differ


def _span_of(iso: str) -> int:
    """Days 0-59 of the simulated log (from 2026-04-01) in spans of 10 days."""
    return (dataset_spec.iso_seconds(iso) - int(simulator.START.timestamp())) // (10 * DAY)
