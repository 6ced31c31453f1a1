"""The model server's request checks (pipeline/server/requests.py), without a server: every refusal names its field,
the well-formed bodies give the signature's inputs."""

import base64
import json
import math

import numpy as np
import pytest

import contract
from datasets import spec as dataset_spec
from pipeline.server.requests import BadRequestError, Reader, content_type_ok, decode_json

ULB_INPUTS = {name: "float32" for name in contract.RAW_FLOAT_FEATURES}
ROW = {name: float(i) for i, name in enumerate(contract.RAW_FLOAT_FEATURES)}


@pytest.fixture(scope="module")
def ulb():
    return Reader(ULB_INPUTS, contract.DEFAULT_DATASET, key="tx", max_rows=5)


@pytest.fixture(scope="module")
def simulated():
    spec = dataset_spec.load(str(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"))
    kinds = {dataset_spec.FLOAT: "float32", dataset_spec.INT: "int64", dataset_spec.BYTES: "string"}
    inputs = {name: kinds[spec.example_kind(name)] for name in spec.features}
    return spec, Reader(inputs, spec)


def features(body) -> dict:
    return {"signature_name": contract.FEATURES_SIGNATURE, **body}


def test_rows_and_columns_give_the_same_inputs(ulb):
    rows = ulb.parse(features({"instances": [ROW, {**ROW, "tx": "t-2"}]}))
    columns = ulb.parse(features({"inputs": {n: [ROW[n], ROW[n]] for n in ROW} | {"tx": [None, "t-2"]}}))
    assert rows.signature == columns.signature == contract.FEATURES_SIGNATURE
    assert (rows.columnar, columns.columnar, rows.rows) == (False, True, 2)
    assert rows.keys == columns.keys == [None, "t-2"]
    for name in ULB_INPUTS:
        assert rows.inputs[name].dtype == np.float32
        np.testing.assert_array_equal(rows.inputs[name], columns.inputs[name])
        assert rows.inputs[name][0] == np.float32(ROW[name])


def test_the_examples_signature_takes_base64_examples_in_both_layouts(ulb):
    raw = [b"\x0a\x00", b"abc"]
    b64 = [{"b64": base64.b64encode(r).decode()} for r in raw]
    assert ulb.parse({"instances": b64}).inputs == {contract.SERVING_INPUT: raw}
    assert ulb.parse({"inputs": {contract.SERVING_INPUT: b64}}).inputs == {contract.SERVING_INPUT: raw}
    assert ulb.parse({"instances": [{contract.SERVING_INPUT: b64[0]}]}).rows == 1


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"instances": [ROW]}, 400, 'use "signature_name": "serving_features"'),
        (
            features({"instances": [{**ROW, "V7x": 1.0}]}),
            400,
            "'V7x' is not a feature of this model (did you mean 'V7'",
        ),
        (features({"instances": [{k: v for k, v in ROW.items() if k != "V3"}]}), 400, "feature 'V3' is missing"),
        (features({"instances": [{**ROW, "Amount": "12.5"}]}), 400, "feature 'Amount' must be a number, got str"),
        (features({"instances": [{**ROW, "V1": True}]}), 400, "feature 'V1' must be a number, got bool"),
        (features({"instances": [{**ROW, "V1": [1.0]}]}), 400, "feature 'V1' must be a number, got list"),
        (features({"instances": [{**ROW, "V2": math.nan}]}), 400, "feature 'V2' is null or NaN; the dataset spec"),
        (features({"instances": [{**ROW, "V2": None}]}), 400, "feature 'V2' is null or NaN"),
        (features({"instances": [{**ROW, "V2": math.inf}]}), 400, "feature 'V2' must be a finite number"),
        (features({"instances": [{**ROW, "V2": 1e39}]}), 400, "beyond float32's range"),
        (features({"instances": [{**ROW, contract.LABEL: 1}]}), 400, "'Class' is the label"),
        (features({"instances": [{**ROW, "tx": 1.5}]}), 400, "the key 'tx' must be text or a whole number"),
        (features({"instances": []}), 400, "'instances' is empty"),
        (features({"instances": [ROW] * 6}), 413, "6 rows; a request may carry 5 at most"),
        (features({"instances": ROW}), 400, "'instances' must be a list of rows"),
        (features({"instances": [ROW, 3]}), 400, "instances[1] must be an object"),
        (features({"inputs": {"V1": [1.0], "V2": [1.0, 2.0]}}), 400, "different lengths [1, 2]"),
        (features({"inputs": {"V1": 1.0}}), 400, "inputs['V1'] must be a list"),
        ({"signature_name": "serving_feature", "instances": [ROW]}, 400, "did you mean 'serving_features'"),
        ({"instance": [ROW]}, 400, "unknown field 'instance' in the request (did you mean 'instances'"),
        ({"instances": [ROW], "inputs": {}}, 400, "exactly one of 'instances'"),
        ({"signature_name": contract.FEATURES_SIGNATURE}, 400, "exactly one of 'instances'"),
        ([ROW], 400, "must be a JSON object"),
        ({"instances": [{"b64": "not base64!"}]}, 400, "row 0: 'b64' is not valid base64"),
        ({"inputs": {"other": []}}, 400, "takes one input, 'examples'"),
    ],
)
def test_each_bad_body_is_refused_naming_what_is_wrong(ulb, body, status, says):
    with pytest.raises(BadRequestError) as refused:
        ulb.parse(body)
    assert refused.value.status == status
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "the request body is empty"),
        (b"  \n", "the request body is empty"),
        (b"{", "not JSON: Expecting property name"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
def test_bodies_that_are_not_json_are_refused(raw, says):
    with pytest.raises(BadRequestError) as refused:
        decode_json(raw)
    assert refused.value.status == 400 and says in str(refused.value)


def test_content_types():
    assert content_type_ok("application/json") and content_type_ok("application/json; charset=utf-8")
    assert content_type_ok(None) and content_type_ok("application/x-www-form-urlencoded")
    assert not content_type_ok("text/csv") and not content_type_ok("multipart/form-data; boundary=x")


def test_another_spec_imputes_what_it_may_and_reads_iso_times(simulated):
    spec, reader = simulated
    row = {name: 1.0 for name, kind in reader.inputs.items() if kind == "float32"}
    row |= {name: "x" for name, kind in reader.inputs.items() if kind == "string"}
    row |= {name: 1 for name, kind in reader.inputs.items() if kind == "int64"}
    row[spec.time] = "2026-03-01T10:00:00Z"
    optional_float = next(f.name for f in spec.numeric if f.missing == "impute")
    optional_text = next(f.name for f in spec.categorical if f.missing == "impute" and f.kind == "string")
    parsed = reader.parse(features({"instances": [row, {**row, optional_float: None, optional_text: None}]}))
    assert parsed.inputs[spec.time].tolist() == [1772359200, 1772359200]
    assert math.isnan(parsed.inputs[optional_float][1]) and parsed.inputs[optional_text][1] == ""
    required = next(f.name for f in spec.numeric if f.missing == "forbid")
    with pytest.raises(BadRequestError, match=f"feature '{required}' is null or NaN"):
        reader.parse(features({"instances": [{**row, required: None}]}))
    with pytest.raises(BadRequestError, match="must be an ISO-8601 date-time"):
        reader.parse(features({"instances": [{**row, spec.time: "yesterday"}]}))


def test_v2_tensors_are_the_same_columns(ulb):
    tensors = [(n, "FP32", [2], [ROW[n], ROW[n]]) for n in ROW] + [("tx", "BYTES", [2], ["a", "b"])]
    parsed = ulb.parse_v2(tensors)
    assert parsed.rows == 2 and parsed.keys == ["a", "b"] and parsed.columnar
    with pytest.raises(BadRequestError, match="input 'V1' has datatype BYTES; it takes FP32/FP64/FP16"):
        ulb.parse_v2([("V1", "BYTES", [1], ["1"])])
    with pytest.raises(BadRequestError, match=r"has shape \[1, 2\]"):
        ulb.parse_v2([("V1", "FP32", [1, 2], [1.0, 2.0])])


def test_the_json_refusals_round_trip_as_json():
    """Every message is text a client can show: the refusal is serialized as {"error": message}."""
    with pytest.raises(BadRequestError) as refused:
        Reader(ULB_INPUTS, contract.DEFAULT_DATASET).parse({"instances": [{"\ud800": 1}]})
    assert json.loads(json.dumps({"error": str(refused.value)}))["error"]


def test_the_fast_path_of_float_rows_gives_what_the_careful_path_gives(ulb):
    rows = [{**ROW, "V4": 1e30, "tx": 7}, {**ROW, "Amount": 3}, {**ROW, "tx": "k"}]
    fast = ulb.parse(features({"instances": rows}))
    careful = Reader(ULB_INPUTS, contract.DEFAULT_DATASET, key="tx", max_rows=5)
    careful._all_float32 = False  # the careful path only
    slow = careful.parse(features({"instances": rows}))
    assert fast.matrix is not None and slow.matrix is None
    assert fast.keys == slow.keys == ["7", None, "k"]
    names = sorted(ULB_INPUTS)
    np.testing.assert_array_equal(fast.matrix, np.stack([slow.inputs[n] for n in names], axis=1))
    for name in names:
        np.testing.assert_array_equal(fast.inputs[name], slow.inputs[name])
    # Anything but finite numbers goes the careful way and is named there.
    with pytest.raises(BadRequestError, match="'V2' must be a finite number"):
        ulb.parse(features({"instances": [ROW, {**ROW, "V2": math.inf}]}))
    with pytest.raises(BadRequestError, match="the key 'tx' must be text or a whole number"):
        ulb.parse(features({"instances": [{**ROW, "tx": True}]}))
