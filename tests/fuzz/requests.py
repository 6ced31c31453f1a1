"""A coverage-guided fuzzer (atheris) of the model server's request checks (pipeline/server/requests.py).

    python -m tests.fuzz.requests [-runs=N | -max_total_time=S] [CORPUS_DIR ...]   (libFuzzer's flags)

Half the inputs are bodies as bytes (what arrives on the wire: any bytes, decoded as the server decodes them), half
are JSON values built from the input (the request's fields, the features' names, the key, the label, and values of
every JSON type: NaN, infinities, numbers past float32, bools, nesting), for the default dataset's reader and the
simulated log's (text, integers, ISO times, features that may be missing), on TF Serving's bodies and on V2 tensors.
A BadRequestError is the check working; any other exception is a finding: libFuzzer stops and writes the input.
"""

import json
import sys

import atheris

with atheris.instrument_imports():
    import contract
    from datasets import spec as dataset_spec
    from pipeline.server.requests import BadRequestError, Reader, decode_json

_SPEC = dataset_spec.load(dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml")
_KINDS = {dataset_spec.FLOAT: "float32", dataset_spec.INT: "int64", dataset_spec.BYTES: "string"}
READERS = (
    Reader({n: "float32" for n in contract.RAW_FLOAT_FEATURES}, contract.DEFAULT_DATASET, key="tx", max_rows=50),
    Reader({n: _KINDS[_SPEC.example_kind(n)] for n in _SPEC.features}, _SPEC, max_rows=50),
)
NAMES = sorted(
    {"instances", "inputs", "signature_name", "b64", "examples", "tx", contract.FEATURES_SIGNATURE, "serving_default"}
    | set(contract.RAW_COLUMNS)
    | set(_SPEC.columns)
)
FLOATS = [float("nan"), float("inf"), -float("inf"), 1e39, -0.0, 0.5, 3.4e38]


def _value(data: atheris.FuzzedDataProvider, depth: int = 0):
    kind = data.ConsumeIntInRange(0, 9)
    if kind == 0 or depth > 3:
        return data.ConsumeFloat()
    if kind == 1:
        return data.ConsumeInt(9)
    if kind == 2:
        return data.ConsumeUnicodeNoSurrogates(12)
    if kind == 3:
        return data.PickValueInList(NAMES)
    if kind == 4:
        return data.ConsumeBool()
    if kind == 5:
        return None
    if kind == 6:
        return data.PickValueInList(FLOATS)
    if kind == 7:
        return [_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 4))]
    if kind == 8:
        return _object(data, depth + 1)
    return {"b64": data.ConsumeUnicodeNoSurrogates(16)}


def _object(data: atheris.FuzzedDataProvider, depth: int) -> dict:
    return {
        data.PickValueInList(NAMES) if data.ConsumeBool() else data.ConsumeUnicodeNoSurrogates(6): _value(data, depth)
        for _ in range(data.ConsumeIntInRange(0, 6))
    }


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    reader = READERS[data.ConsumeIntInRange(0, 1)]
    how = data.ConsumeIntInRange(0, 2)
    try:
        if how == 0:
            body = decode_json(data.ConsumeBytes(data.remaining_bytes()))
        elif how == 1:
            body = json.loads(json.dumps(_object(data, 0)))
        else:
            tensors = [
                (data.PickValueInList(NAMES), data.PickValueInList(["FP32", "INT64", "BYTES", "FP64", "BOOL"]),
                 _value(data, 2), _value(data, 2))
                for _ in range(data.ConsumeIntInRange(0, 4))
            ]  # fmt: skip
            reader.parse_v2(tensors)
            return
        reader.parse(body)
    except BadRequestError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
