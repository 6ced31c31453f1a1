"""What a request to the model server may carry, checked before anything is scored.

TF Serving's REST predict body (`instances`: one object a row; `inputs`: one list a feature) and the Open Inference
Protocol's tensors (V2) become the inputs of one of the model's signatures, or are refused with a 4xx whose message
names the field, the row and what was expected. A refused request costs a parse and nothing else: no model call, no
record. No TensorFlow and no HTTP here: the server's routes call it, and the fuzzer (tests/fuzz/requests.py) feeds it
whatever bytes it finds.

The signatures (contract.SERVING_SIGNATURE, contract.FEATURES_SIGNATURE) and their inputs are those of the pushed
version (contract.FEATURES_INPUTS); which feature may be missing, and how the time is written, is its dataset spec's.
"""

import base64
import binascii
import dataclasses
import difflib
import json
import math

import numpy as np

import contract
from datasets.spec import DatasetSpec

# A request body larger than this is refused with 413 before it is read whole (--max-body-bytes).
MAX_BODY_BYTES = 8 << 20
# Rows in one request at most (--max-rows): a batch scoring job belongs to `predict`, not to the online endpoint.
MAX_ROWS = 10_000
# Content types a body may be declared as: JSON, or none, or the form type curl gives `-d` (TF Serving's REST API
# page sends its examples with `curl -d`, and TF Serving reads the body as JSON whatever its type).
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
_FLOAT = ("float32", "float64", "float16", "half", "float", "double")
_INT = ("int64", "int32", "int16", "int8", "uint8")
# V2 datatypes each input dtype takes (the Open Inference Protocol's names).
_V2 = {"float": ("FP32", "FP64", "FP16"), "int": ("INT64", "INT32", "INT16", "INT8", "UINT8"), "string": ("BYTES",)}


class BadRequestError(ValueError):
    """A request the server refuses; status is the HTTP code (400, 413 or 415), the message names what is wrong."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A request checked: the signature to call, its inputs (name -> 1-D numpy array, or the serialized examples),
    how many rows, whether the body was columnar (the response is written the same way), and each row's key."""

    signature: str
    inputs: dict
    rows: int
    columnar: bool
    keys: list | None
    # The same rows as one [rows, features] float32 matrix, features in sorted order, when every input is a float32
    # and every value a finite number (the model takes it as it is: pipeline/scoring/predict.py, _packed).
    matrix: object = None


def _kind(dtype: str) -> str:
    if dtype in _FLOAT:
        return "float"
    if dtype in _INT:
        return "int"
    return "string"


def _describe(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__ if value is not None else 'null'} {text}"


def _nearest(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def content_type_ok(content_type: str | None) -> bool:
    """Is a declared Content-Type one a JSON body may have (parameters such as charset aside)?"""
    return (content_type or "").split(";")[0].strip().lower() in JSON_TYPES


def decode_json(body: bytes):
    """The body as JSON (NaN and Infinity taken, as TF Serving's parser takes them; refused later where a feature
    forbids them).

    Raises:
      BadRequestError: empty, not UTF-8, not JSON, or nested past Python's limit.
    """
    if not body or not body.strip():
        raise BadRequestError("the request body is empty: send a JSON object with 'instances' or 'inputs'")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequestError(f"the request body is not UTF-8 text (byte {e.start}): send JSON") from None
    except json.JSONDecodeError as e:
        raise BadRequestError(f"the request body is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise BadRequestError("the request body nests too deeply to be a predict request") from None


class Reader:
    """Checks the requests of one pushed version.

    Args:
      feature_inputs: the raw-features signature's inputs, name -> dtype (empty for a version without it).
      spec: the version's dataset spec: which features may be missing, the time's format, the label (never sent).
      key: a field each row may carry besides the features (a transaction id), recorded with its score; it is not
        a model input unless the signature takes it.
      max_rows: rows a request may carry at most.
    """

    def __init__(self, feature_inputs: dict, spec: DatasetSpec, key: str | None = None, max_rows: int = MAX_ROWS):
        # The history features are the online store's to compute (pipeline/server/history.py), never a client's.
        self.computed = [name for name in spec.history_features if name in feature_inputs]
        self.inputs = {name: dtype for name, dtype in feature_inputs.items() if name not in set(self.computed)}
        self.spec = spec
        self.key = key or None
        self.max_rows = max_rows
        self._kinds = {name: _kind(dtype) for name, dtype in self.inputs.items()}
        self._optional = {name for name in self.inputs if spec.may_be_missing(name)}
        float32 = float(np.finfo(np.float32).max)
        self._sorted_names = sorted(self.inputs)
        self._allowed = set(self.inputs) | ({self.key} if self.key else set())
        self._all_float32 = bool(self.inputs) and all(d in ("float32", "float") for d in self.inputs.values())
        self._float32_max = float32
        self._float_max = {
            name: float32 if dtype in ("float32", "float") else math.inf for name, dtype in self.inputs.items()
        }
        self._iso_time = spec.time if spec.time_format != "seconds" and spec.time in self.inputs else None
        self.signatures = (contract.SERVING_SIGNATURE, *((contract.FEATURES_SIGNATURE,) if self.inputs else ()))

    # -- TF Serving's REST API --------------------------------------------------------------------------------------

    def parse(self, body) -> Parsed:
        """A decoded TF Serving predict body -> the signature's inputs.

        Raises:
          BadRequestError: anything but a well-formed request for one of the version's signatures.
        """
        if not isinstance(body, dict):
            raise BadRequestError(
                f"the request body must be a JSON object with 'instances' or 'inputs', not a {_describe(body)}"
            )
        unknown = set(body) - {"signature_name", "instances", "inputs"}
        if unknown:
            name = sorted(unknown)[0]
            raise BadRequestError(
                f"unknown field {name!r} in the request{_nearest(name, ('instances', 'inputs', 'signature_name'))}"
            )
        if ("instances" in body) == ("inputs" in body):
            raise BadRequestError("send exactly one of 'instances' (a list of rows) and 'inputs' (the columns)")
        signature = body.get("signature_name", contract.SERVING_SIGNATURE)
        if signature not in self.signatures:
            raise BadRequestError(
                f"signature_name {signature!r} is not a signature of this model; it has {list(self.signatures)}"
                + _nearest(str(signature), self.signatures)
            )
        if signature == contract.SERVING_SIGNATURE:
            return self._examples(body)
        if "instances" in body:
            return self._rows(body["instances"])
        return self._columns(body["inputs"])

    def _count(self, n: int, what: str) -> None:
        if n == 0:
            raise BadRequestError(f"'{what}' is empty: send at least one row")
        if n > self.max_rows:
            raise BadRequestError(f"'{what}' has {n} rows; a request may carry {self.max_rows} at most", status=413)

    def _examples(self, body) -> Parsed:
        columnar = "inputs" in body
        values = body["inputs"] if columnar else body["instances"]
        if columnar and isinstance(values, dict):
            if set(values) != {contract.SERVING_INPUT}:
                raise BadRequestError(
                    f"the {contract.SERVING_SIGNATURE} signature takes one input, {contract.SERVING_INPUT!r}"
                )
            values = values[contract.SERVING_INPUT]
        what = "inputs" if columnar else "instances"
        if not isinstance(values, list):
            raise BadRequestError(f"'{what}' must be a list of base64-encoded tf.Examples ({{\"b64\": ...}})")
        self._count(len(values), what)
        examples = []
        for i, value in enumerate(values):
            if isinstance(value, dict) and set(value) == {contract.SERVING_INPUT}:
                value = value[contract.SERVING_INPUT]
            if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise BadRequestError(
                    f"row {i}: the {contract.SERVING_SIGNATURE} signature takes serialized tf.Examples as "
                    f'{{"b64": "<base64>"}}, got {_describe(value)}; to send features by name, use '
                    f'"signature_name": "{contract.FEATURES_SIGNATURE}"'
                )
            try:
                examples.append(base64.b64decode(value["b64"], validate=True))
            except (binascii.Error, ValueError):
                raise BadRequestError(f"row {i}: 'b64' is not valid base64") from None
        return Parsed(contract.SERVING_SIGNATURE, {contract.SERVING_INPUT: examples}, len(examples), columnar, None)

    def _rows(self, instances) -> Parsed:
        if not isinstance(instances, list):
            raise BadRequestError(
                f"'instances' must be a list of rows (objects of feature: value), not a {_describe(instances)}"
            )
        self._count(len(instances), "instances")
        if self._all_float32:
            fast = self._float_rows(instances)
            if fast is not None:
                return fast
        columns = {name: [] for name in self.inputs}
        keys = [] if self.key else None
        for i, row in enumerate(instances):
            if not isinstance(row, dict):
                raise BadRequestError(f"instances[{i}] must be an object of feature: value, not a {_describe(row)}")
            for name in row:
                if name not in self.inputs and name != self.key:
                    raise self._unknown(name, f"instances[{i}]")
            for name, column in columns.items():
                column.append(self._value(name, row.get(name), f"instances[{i}]", name in row))
            if keys is not None:
                keys.append(self._key(row.get(self.key), f"instances[{i}]"))
        return Parsed(contract.FEATURES_SIGNATURE, self._arrays(columns), len(instances), False, keys)

    def _float_rows(self, instances) -> Parsed | None:
        """Rows of finite numbers for float32 features only, checked a row at a time by C loops (about a tenth of the
        cost of _value for each cell); None for anything else, which the careful path then reads and names."""
        names, allowed, key = self._sorted_names, self._allowed, self.key
        matrix, keys = [], [] if key else None
        for row in instances:
            if type(row) is not dict or not row.keys() <= allowed:
                return None
            values = [row.get(n) for n in names]
            if not all(type(v) is float or type(v) is int for v in values):
                return None
            matrix.append(values)
            if keys is not None:
                found = row.get(key)
                if found is not None and not (type(found) is str or type(found) is int):
                    return None
                keys.append(None if found is None else str(found))
        wide = np.array(matrix, dtype=np.float64)
        if not np.isfinite(wide).all() or (np.abs(wide) > self._float32_max).any():
            return None
        packed = wide.astype(np.float32)
        inputs = {n: packed[:, j] for j, n in enumerate(names)}
        return Parsed(contract.FEATURES_SIGNATURE, inputs, len(instances), False, keys, packed)

    def _columns(self, inputs) -> Parsed:
        if not isinstance(inputs, dict):
            raise BadRequestError(f"'inputs' must be an object of feature: list of values, not a {_describe(inputs)}")
        for name in inputs:
            if name not in self.inputs and name != self.key:
                raise self._unknown(name, "inputs")
        lengths = set()
        for name, values in inputs.items():
            if not isinstance(values, list):
                raise BadRequestError(
                    f"inputs[{name!r}] must be a list of values, one a row, not a {_describe(values)}"
                )
            lengths.add(len(values))
        if len(lengths) > 1:
            raise BadRequestError(
                f"the inputs have different lengths {sorted(lengths)}: give every feature one value a row"
            )
        n = lengths.pop() if lengths else 0
        self._count(n, "inputs")
        columns = {}
        for name in self.inputs:
            given = inputs.get(name)
            cells = given if given is not None else [None] * n
            columns[name] = [
                self._value(name, v, f"inputs[{name!r}][{i}]", given is not None) for i, v in enumerate(cells)
            ]
        keys = None
        if self.key:
            given = inputs.get(self.key) or [None] * n
            keys = [self._key(v, f"inputs[{self.key!r}][{i}]") for i, v in enumerate(given)]
        return Parsed(contract.FEATURES_SIGNATURE, self._arrays(columns), n, True, keys)

    # -- the Open Inference Protocol (V2) ---------------------------------------------------------------------------

    def parse_v2(self, tensors: list) -> Parsed:
        """V2 input tensors, each (name, datatype, shape, data as a flat list), for the raw-features signature (and
        the key as a BYTES tensor).

        Raises:
          BadRequestError: a tensor that is not a feature, of the wrong datatype or shape, or of a length unlike
            the rest.
        """
        if not self.inputs:
            raise BadRequestError(f"this model version has no {contract.FEATURES_SIGNATURE} signature for V2 requests")
        given = {}
        for name, datatype, shape, data in tensors:
            if name not in self.inputs and name != self.key:
                raise self._unknown(name, "inputs")
            kind = self._kinds.get(name, "string")
            wanted = _V2[kind] + (("BYTES",) if name == self._iso_time else ())
            if datatype not in wanted:
                raise BadRequestError(f"input {name!r} has datatype {datatype}; it takes {'/'.join(wanted)}")
            if not isinstance(shape, list) or len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise BadRequestError(f"input {name!r} has shape {shape}; it takes [rows] or [rows, 1]")
            if not isinstance(data, list) or len(data) != shape[0]:
                raise BadRequestError(
                    f"input {name!r} has {len(data) if isinstance(data, list) else 'no'} values for shape {shape}"
                )
            given[name] = data
        lengths = {len(v) for v in given.values()}
        if len(lengths) > 1:
            raise BadRequestError(
                f"the inputs have different lengths {sorted(lengths)}: give every feature one value a row"
            )
        return self._columns(given)

    # -- one value --------------------------------------------------------------------------------------------------

    def _unknown(self, name, where: str) -> BadRequestError:
        if name in self.computed:
            return BadRequestError(
                f"{where}: {name!r} is a history feature: the server computes it from the online store, a request "
                "does not send it"
            )
        if name == self.spec.label:
            return BadRequestError(f"{where}: {name!r} is the label; a request carries the features only")
        return BadRequestError(f"{where}: {name!r} is not a feature of this model{_nearest(str(name), self.inputs)}")

    def _missing(self, name: str, where: str, sent: bool):
        if name not in self._optional:
            said = "is null or NaN" if sent else "is missing"
            return BadRequestError(f"{where}: feature {name!r} {said}; the dataset spec requires it (missing: forbid)")
        kind = self._kinds[name]
        if kind == "int":
            return BadRequestError(f"{where}: feature {name!r} is missing; an integer feature cannot be sent missing")
        return float("nan") if kind == "float" else ""

    def _value(self, name: str, value, where: str, sent: bool):
        kind = self._kinds[name]
        # The common case first: a finite number for a float feature, within float32's range where it is one.
        if (type(value) is float or type(value) is int) and kind == "float" and value - value == 0:
            if abs(value) <= self._float_max[name]:
                return value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            found = self._missing(name, where, sent)
            if isinstance(found, BadRequestError):
                raise found
            return found
        if name == self._iso_time and isinstance(value, str):
            seconds = self.spec.time_of(value)
            if seconds is None:
                raise BadRequestError(
                    f"{where}: feature {name!r} must be an ISO-8601 date-time or epoch seconds, got {_describe(value)}"
                )
            return seconds
        if kind == "string":
            if isinstance(value, str):
                if value == "" and name not in self._optional:
                    raise BadRequestError(
                        f"{where}: feature {name!r} is empty; the dataset spec requires it (missing: forbid)"
                    )
                return value
            raise BadRequestError(f"{where}: feature {name!r} must be text, got {_describe(value)}")
        if type(value) not in (int, float):  # bool is an int to Python, not a number to a client
            raise BadRequestError(f"{where}: feature {name!r} must be a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise BadRequestError(f"{where}: feature {name!r} must be a finite number, got {_describe(value)}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise BadRequestError(f"{where}: feature {name!r} must be a whole number, got {_describe(value)}")
            if not -(2**63) <= value < 2**63:
                raise BadRequestError(f"{where}: feature {name!r} is out of the 64-bit integer range")
            return int(value)
        if abs(value) > self._float_max[name]:
            raise BadRequestError(f"{where}: feature {name!r} is beyond float32's range, got {_describe(value)}")
        return value

    def _key(self, value, where: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) or type(value) is int:
            return str(value)
        raise BadRequestError(f"{where}: the key {self.key!r} must be text or a whole number, got {_describe(value)}")

    def _arrays(self, columns: dict) -> dict:
        out = {}
        for name, values in columns.items():
            dtype = self.inputs[name]
            out[name] = np.asarray(values, dtype=object if self._kinds[name] == "string" else dtype)
        return out
