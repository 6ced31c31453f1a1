"""The dataset spec: loading and its errors, what is derived from it (columns, drift thresholds, the model's input
layout, the schema's draft), the check against data, and the simulator of the second dataset."""

import gzip
import itertools
import re

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.proto import distribution_validator_pb2

import contract
from components.lib import csv_contract
from datasets import check, schema
from datasets import spec as dataset_spec
from datasets.simulated import simulator
from datasets.spec import SpecError, SpecMismatchError
from trainer import model as model_lib
from trainer.hparams import HParams

SIMULATED = dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"


def test_the_default_spec_is_the_ulb_contract():
    """The ULB file as the pipeline read it before there were specs (written out here, not read from the spec)."""
    ulb = dataset_spec.default()
    v = tuple(f"V{i}" for i in range(1, 29))
    assert ulb.features == ("Time", *v, "Amount") and ulb.columns == ("Time", *v, "Amount", "Class")
    assert contract.RAW_COLUMNS == ulb.columns and contract.MODEL_FEATURES == (*v, "Amount")
    assert ulb.label_is_integer and ulb.time_format == "seconds"
    assert [f.transform for f in ulb.numeric] == ["zscore"] * 28 + ["log_zscore"]
    assert {f.clip for f in ulb.numeric} == {5.0} and ulb.numeric[-1].log_offset == 0.001
    assert all(f.missing == "forbid" for f in ulb.numeric) and ulb.categorical == ()
    amount, hour = ulb.slices
    assert (amount.name, amount.column, amount.edges) == ("amount_bucket", "Amount", (10.0, 50.0, 200.0, 1000.0))
    assert amount.labels == ("0-10", "10-50", "50-200", "200-1000", "1000+")
    assert (hour.name, hour.hours) == ("hour_bucket", 4)
    assert contract.HOUR_LABELS == ("00-04h", "04-08h", "08-12h", "12-16h", "16-20h", "20-24h")
    assert model_lib.model_inputs(HParams()) == contract.MODEL_INPUTS
    assert model_lib.model_inputs(HParams(time_of_day=True)) == contract.MODEL_INPUTS + contract.TIME_OF_DAY_INPUTS


def test_the_ulb_drift_thresholds_compare_every_model_feature_and_the_label_but_not_time():
    config = text_format.Parse(
        dataset_spec.drift_config(dataset_spec.default()), distribution_validator_pb2.DistributionValidatorConfig()
    )
    found = {f.path.step[0]: f.distribution_comparator for f in config.default_slice_config.feature}
    features = [f"V{i}" for i in range(1, 29)] + ["Amount"]
    assert set(found) == {*features, "Class"}
    assert {found[n].jensen_shannon_divergence.threshold for n in features} == {0.5}
    quantiles = schema_pb2.HistogramSelection.QUANTILES
    assert {found[n].jensen_shannon_divergence.source.type for n in features} == {quantiles}
    assert found["Class"].infinity_norm.threshold == 0.15


@pytest.mark.parametrize("path", [dataset_spec.DEFAULT_SPEC, SIMULATED])
def test_a_spec_travels_as_json_and_comes_back_the_same(path):
    spec = dataset_spec.load(path)
    again = dataset_spec.from_json(spec.to_json())
    assert again == spec and again.digest() == spec.digest()
    assert dataset_spec.of_config({"dataset": spec.to_json()}) == spec
    assert dataset_spec.of_config({}) == dataset_spec.default()


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "dataset.yaml"
    path.write_text(text)
    return str(path)


BASE = """name: t
label: {column: y, positive: fraud, negative: [legit]}
time: {column: t, format: iso8601}
numeric: [amount]
"""


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("numeric_defaults: {transform: log}\n", "numeric[0].transform"),
        ("categorical: [{name: c, top_k: 0}]\n", "categorical[0].top_k"),
        ("categorical: [{name: amount}]\n", "categorical[0].name"),
        ("slices: [{name: s, column: nowhere}]\n", "slices[0].column"),
        ("slices: [{name: s, column: amount, edges: [1, 2], labels: [a]}]\n", "slices[0].labels"),
        ("slices: [{name: s, hours: 5}]\n", "slices[0].hours"),
        ("drift: {features: {nowhere: 0.2}}\n", "drift.features.nowhere"),
        ("amount: t\n", "amount"),
        ("colour: blue\n", "the file has fields the spec does not know"),
        ("numeric_defaults: {colour: blue}\n", "numeric_defaults.colour"),
        ("entities: [card]\ncard_precision: {entity: terminal}\n", "card_precision.entity"),
        ("entities: [card]\ncard_precision: {entity: card, k: 0}\n", "card_precision.k"),
        ("card_precision: {entity: amount}\n", "card_precision.entity"),
    ],
)
def test_a_spec_that_is_not_well_formed_names_its_field(tmp_path, extra, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dataset_spec.load(_write(tmp_path, BASE + extra))


def test_a_label_value_both_positive_and_negative_and_a_missing_field_are_refused(tmp_path):
    with pytest.raises(SpecError, match="label.negative"):
        dataset_spec.load(_write(tmp_path, BASE.replace("[legit]", "[legit, fraud]")))
    with pytest.raises(SpecError, match="time: the file must be a mapping|time.*column: is required"):
        dataset_spec.load(
            _write(tmp_path, BASE.replace("time: {column: t, format: iso8601}", "time: {format: iso8601}"))
        )


def test_labels_and_times_are_read_by_the_spec():
    sim = dataset_spec.load(SIMULATED)
    assert [sim.label_of(v) for v in ("fraud", "legit", " fraud ", "other", "")] == [1, 0, 1, None, None]
    ulb = dataset_spec.default()
    assert [ulb.label_of(v) for v in ("1", "1.0", "0", "2")] == [1, 1, 0, None]
    assert dataset_spec.iso_seconds("1970-01-02T00:00:00Z") == 86400
    assert dataset_spec.iso_seconds("1970-01-02 01:00:00+01:00") == 86400
    assert dataset_spec.iso_seconds("1970-01-02T00:00:00") == 86400  # no offset: UTC
    assert dataset_spec.iso_seconds("yesterday") is None
    assert sim.value_of("tx_datetime", "2026-04-01T00:00:10Z") == 1775001610
    assert sim.value_of("amount", "12.5") == 12.5 and sim.value_of("amount", "x") is None
    assert sim.value_of("label", "fraud") == 1 and ulb.value_of("Class", "1.0") == 1


def test_the_model_input_layout_one_hot_then_embeddings_last():
    # The simulated spec with its terminal as an embedded category rather than an entity.
    raw = dataset_spec.load(SIMULATED).to_dict()
    raw["entities"] = ["customer_id"]
    raw["categorical"].append({"name": "terminal_id", "top_k": 2000, "embedding_dim": 8, "max_cardinality": 50000})
    sim = dataset_spec.parse(raw, "test")
    layout = model_lib.input_layout(HParams(time_of_day=True), sim)
    widths = {f.name: f.width for f in sim.categorical}
    history = tuple(f"{name}_xf" for name in sim.history_features)
    assert len(history) == 12
    assert layout.names[:2] == ("amount_xf", "card_age_days_xf")
    assert layout.names[2:14] == history  # the history section's features close the numeric ones
    assert layout.names[14] == "card_age_days_missing_xf"
    assert layout.names[-1] == "terminal_id_id_xf"  # the embedded one, after the time of day
    one_hot = widths["merchant_category"] + widths["channel"] + widths["country"]
    assert layout.width == 3 + 12 + one_hot + 2 + 1
    assert layout.embeddings == (model_lib.Embedding(layout.width - 1, widths["terminal_id"], 8),)
    model = model_lib.build_model(HParams(), -3.0, layout)
    assert model.input_shape == (None, layout.width)


def test_what_changed_between_two_specs_and_whether_a_model_reads_other_examples():
    sim, ulb = dataset_spec.load(SIMULATED), dataset_spec.default()
    assert dataset_spec.changes(ulb, ulb) == []
    found = dataset_spec.changes(sim, ulb)
    assert "numeric features added: V1, V2, V3, V4, V5 and 24 more" in found
    assert any(c.startswith("label: ") for c in found)
    assert dataset_spec.unreadable(ulb, ulb) == [] and dataset_spec.unreadable(sim, sim) == []
    assert dataset_spec.unreadable(sim, ulb)[:2] == ["tx_datetime", "transaction_id"]


def _simulated(tmp_path, **sizes):
    path = str(tmp_path / "log.csv.gz")
    simulator.write(simulator.Settings(**{"days": 20, "customers": 200, "terminals": 50, **sizes}), path)
    return path


def _check(spec, path):
    header = csv_contract.read_header(path)
    check.check_header(spec, header, path)
    return check.check_rows(spec, header, itertools.islice(csv_contract.careful_rows(path), 5000), path)


def test_the_simulated_log_fits_its_spec_and_its_schema_draft_parses(tmp_path):
    sim = dataset_spec.load(SIMULATED)
    path = _simulated(tmp_path)
    seen = _check(sim, path)
    assert seen["labels"][0] > 0 and seen["distinct"]["channel"] == 3
    draft = text_format.Parse(schema.bootstrap(sim, seen, path), schema_pb2.Schema())
    features = {f.name: f for f in draft.feature}
    assert set(features) == set(sim.columns) | set(sim.history_features)
    window = features["terminal_id_fraud_rate_7d"]  # computed by the pipeline: always there, never negative
    assert window.type == schema_pb2.FLOAT and window.presence.min_fraction == 1.0 and window.float_domain.min == 0
    assert features["card_age_days"].presence.min_count == 0  # imputed: may be missing
    assert features["amount"].presence.min_fraction == 1.0 and features["amount"].float_domain.min == 0
    assert features["label"].int_domain.max == 1 and list(features["label"].not_in_environment) == ["SERVING"]
    assert features["tx_datetime"].type == schema_pb2.INT and features["channel"].type == schema_pb2.BYTES


def _edit(path: str, tmp_path, column: str, line: int, value: str) -> str:
    rows = gzip.open(path, "rt").read().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    out = tmp_path / "edited.csv"
    out.write_text("\n".join(rows) + "\n")
    return str(out)


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("amount", "12,50 EUR", "numeric[0]"),
        ("label", "unknown", "label"),
        ("tx_datetime", "yesterday", "time.format"),
        ("channel", "", "categorical[1].missing is forbid"),
        ("card_age_days", "", None),  # imputed: may be missing
    ],
)
def test_a_spec_that_does_not_fit_the_data_names_the_field_and_the_line(tmp_path, column, value, field):
    sim = dataset_spec.load(SIMULATED)
    path = _edit(_simulated(tmp_path), tmp_path, column, 7, value.replace(",", ";"))
    if field is None:
        _check(sim, path)
        return
    with pytest.raises(SpecMismatchError, match=re.escape(field)) as raised:
        _check(sim, path)
    assert "line 7" in str(raised.value) and column in str(raised.value)


def test_an_unknown_column_and_a_categorical_past_its_cap_are_named(tmp_path):
    sim = dataset_spec.load(SIMULATED)
    path = _simulated(tmp_path)
    with pytest.raises(SpecMismatchError, match=r"numeric\[0\]: column 'amount' is not in"):
        check.check_header(sim, [c if c != "amount" else "amt" for c in csv_contract.read_header(path)], path)
    capped = dataset_spec.parse(
        {
            **sim.to_dict(),
            "entities": ["customer_id"],
            "categorical": [
                {"name": "channel"},
                {"name": "terminal_id", "max_cardinality": 10},
                {"name": "merchant_category"},
                {"name": "country"},
            ],
        },
        "test",
    )
    with pytest.raises(SpecMismatchError, match=r"categorical\[1\].max_cardinality: 'terminal_id'"):
        _check(capped, path)


def test_the_simulator_is_seeded_and_follows_the_handbook_scenarios(tmp_path):
    settings = simulator.Settings(days=30, customers=300, terminals=80, seed=3)
    a, b = simulator.simulate(settings), simulator.simulate(settings)
    assert all((a[k] == b[k]).all() for k in a)
    other = simulator.simulate(simulator.Settings(days=30, customers=300, terminals=80, seed=4))
    assert len(other["label"]) != len(a["label"]) or (other["amount"] != a["amount"]).any()
    fraud = a["label"].astype(bool)
    assert fraud[a["amount"] > 220].all()  # scenario 1 (and 3's inflated amounts)
    assert (fraud & (a["amount"] <= 220)).any()  # scenarios 2 and 3 reach ordinary amounts
    assert (a["tx_datetime"][1:] >= a["tx_datetime"][:-1]).all()
    for name, share in simulator.MISSING.items():
        assert abs(a[f"{name}_missing"].mean() - share) < 0.01
    header, first = list(simulator.rows(a))[:2]
    assert header == list(simulator.COLUMNS) and first[1].endswith("Z") and first[-1] in ("fraud", "legit")
