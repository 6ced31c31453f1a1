"""The online store (pipeline/online_store) serves the history features training computed, to the last digit: days of
the simulated log replayed through it in time order, labels arriving after the delay, on SQLite and on a real
PostgreSQL server started for the test."""

import itertools

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

from components.example_gen.history import AddHistory
from components.example_gen.records import to_example
from components.lib import csv_contract
from datasets import history as history_lib
from datasets import spec as dataset_spec
from datasets.simulated import simulator
from pipeline.online_store.store import OnlineStore, OnlineStoreError
from tests.postgres import PostgresServer

# A Beam pipeline for the log and real PostgreSQL servers: in make test, not in make test-fast.
pytestmark = pytest.mark.slow

SIMULATED = dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"


def _first(example, name):
    f = example.features.feature[name]
    values = f.float_list.value or f.int64_list.value or f.bytes_list.value
    return values[0] if values else None


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """A month of the simulated log as the scorers' rows, in time order, and what the Beam step gave each row."""
    spec = dataset_spec.load(SIMULATED)
    path = str(tmp_path_factory.mktemp("log") / "log.csv.gz")
    simulator.write(simulator.Settings(days=30, customers=60, terminals=15, seed=11), path)
    names = csv_contract.read_header(path)
    kinds = [spec.example_kind(n) for n in names]
    examples = [to_example(c, names, kinds, spec) for _, c in itertools.islice(csv_contract.careful_rows(path), 4000)]
    rows = []
    for example in examples:
        row = {n: _first(example, n) for n in spec.columns}
        row = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in row.items() if v is not None}
        rows.append(row)
    rows.sort(key=lambda r: r[spec.time])
    prefix = str(tmp_path_factory.mktemp("beam") / "examples")
    with beam.Pipeline() as pipeline:
        serialized = [e.SerializeToString() for e in examples]
        blocks = [(serialized[i : i + 500], True) for i in range(0, len(serialized), 500)]
        out = pipeline | beam.Create(blocks) | AddHistory(spec) | beam.FlatMap(lambda block: block[1])
        _ = out | beam.io.WriteToTFRecord(prefix)
    beam_values = {}
    for serialized in tf.data.TFRecordDataset(tf.io.gfile.glob(prefix + "*")).as_numpy_iterator():
        example = tf.train.Example.FromString(serialized)
        beam_values[_first(example, spec.key).decode()] = {n: _first(example, n) for n in spec.history_features}
    # The same windows in float64, by the function the Beam step calls on each entity's sorted rows.
    exact = {}
    for item in spec.history:
        by_entity = {}
        for row in rows:
            by_entity.setdefault(row.get(item.entity), []).append(row)
        for group in by_entity.values():
            values = history_lib.windows(
                item,
                np.array([float(r[spec.time]) for r in group]),
                np.array([float(np.float32(r[item.value])) if item.value else 0.0 for r in group]),
                np.array([r[spec.label] for r in group]),
            )
            for i, row in enumerate(group):
                exact.setdefault(row[spec.key], {}).update({n: float(v[i]) for n, v in values.items()})
    return spec, rows, beam_values, exact


def _replay(store: OnlineStore, spec, rows: list[dict], batch: int = 37) -> dict:
    """Scores the rows in time order in batches, the labels of each row arriving once its time plus the delay has
    passed (before the next batch): each row's served features by key."""
    delay = max(item.delay_seconds for item in spec.history)
    served, labelled = {}, 0
    for start in range(0, len(rows), batch):
        chunk = [{k: v for k, v in r.items() if k != spec.label} for r in rows[start : start + batch]]
        now = chunk[-1][spec.time]
        arrived = {}
        while labelled < start and rows[labelled][spec.time] + delay <= now:
            arrived[rows[labelled][spec.key]] = rows[labelled][spec.label]
            labelled += 1
        store.label(arrived)
        for row in store.enrich(chunk):
            served[row[spec.key]] = {n: row[n] for n in spec.history_features}
    return served


def _check(served: dict, beam_values: dict, exact: dict, names) -> None:
    assert set(served) == set(beam_values)
    frauds_seen = 0
    for key, values in served.items():
        for name in names:
            # The Beam step's value (float32 in the example) and the float64 windows it was rounded from.
            assert np.float32(values[name]) == beam_values[key][name], (key, name, values[name], beam_values[key][name])
            assert abs(values[name] - exact[key][name]) <= 1e-9 * max(1.0, abs(exact[key][name])), (key, name)
        frauds_seen += values["terminal_id_fraud_rate_30d"] > 0
    assert frauds_seen > 0  # the terminals' delayed fraud rates were served from labels that arrived


def test_the_sqlite_store_serves_the_windows_training_computed(log, tmp_path):
    spec, rows, beam_values, exact = log
    one = OnlineStore.open(spec, tmp_path / "one_at_a_time")  # a row at a time, as a single-row request
    _check(_replay(one, spec, rows, batch=1), beam_values, exact, spec.history_features)
    one.close()
    store = OnlineStore.open(spec, tmp_path)
    served = _replay(store, spec, rows)
    _check(served, beam_values, exact, spec.history_features)
    # Pruned to the reach: nothing older than the longest window plus the delay before the newest row.
    store.prune()
    newest = rows[-1][spec.time]
    kept_times = [r[spec.time] for r in rows if r[spec.time] >= newest - spec.history_span]
    assert store.count() == len(kept_times) * len(spec.history)
    store.close()


def test_the_postgresql_store_serves_the_same_windows(log):
    """In batches (a transaction: the write, then the reads) and a row at a time (the server's single-row request:
    the write and the reads in one statement), each into a database of its own."""
    import psycopg

    spec, rows, beam_values, exact = log
    with PostgresServer() as url:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE DATABASE one_at_a_time")
        for where, batch in ((url, 37), (url.rsplit("/", 1)[0] + "/one_at_a_time", 1)):
            store = OnlineStore.open(spec, "/nonexistent", where)
            served = _replay(store, spec, rows, batch=batch)
            _check(served, beam_values, exact, spec.history_features)
            store.close()


def test_a_row_scored_again_or_without_history_is_served_not_refused(log, tmp_path):
    spec, rows, _, _ = log
    store = OnlineStore.open(spec, tmp_path)
    first = {k: v for k, v in rows[0].items() if k != spec.label}
    lone = {**first, "customer_id": "C-never-seen", "transaction_id": "T-lone"}
    del lone["terminal_id"]
    out = store.enrich([dict(first), dict(first), lone])
    assert out[0]["customer_id_count_1d"] == out[1]["customer_id_count_1d"] == 1.0  # written once, by its key
    assert out[2]["customer_id_count_30d"] == 1.0 and out[2]["terminal_id_count_30d"] == 0.0
    assert out[2]["terminal_id_fraud_rate_30d"] == 0.0  # the spec's empty value
    assert store.label({"T-no-such-row": 1}) == 0
    store.close()


def test_a_single_row_on_postgresql_scored_again_or_without_history_is_served(log):
    """The single-row path on PostgreSQL (OnlineStore._serve_one, the write and the reads in one statement): a row
    scored twice is written once; a row without an entity, or without a time, gets the spec's empty values."""
    spec, rows, _, _ = log
    first = {k: v for k, v in rows[0].items() if k != spec.label}
    lone = {**first, "customer_id": "C-never-seen", "transaction_id": "T-lone"}
    del lone["terminal_id"]
    timeless = {k: v for k, v in lone.items() if k != spec.time}
    with PostgresServer() as url:
        store = OnlineStore.open(spec, "/nonexistent", url)
        once, again = store.enrich([dict(first)])[0], store.enrich([dict(first)])[0]
        assert once["customer_id_count_1d"] == again["customer_id_count_1d"] == 1.0
        assert store.count() == len(spec.history)  # the second scoring wrote nothing
        out = store.enrich([dict(lone)])[0]
        assert out["customer_id_count_30d"] == 1.0 and out["terminal_id_count_30d"] == 0.0
        assert out["terminal_id_fraud_rate_30d"] == 0.0
        assert store.count() == len(spec.history) + 1  # the lone row under its customer only
        out = store.enrich([dict(timeless)])[0]
        assert out["customer_id_count_30d"] == 0.0 and out["terminal_id_fraud_rate_30d"] == 0.0
        store.close()


def test_a_store_that_cannot_be_opened_says_where(tmp_path):
    spec = dataset_spec.load(SIMULATED)
    with pytest.raises(OnlineStoreError, match="127.0.0.1:1/"):
        OnlineStore.open(spec, tmp_path, "postgresql://nobody@127.0.0.1:1/none")
