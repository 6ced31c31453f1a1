"""The pushed model as a KServe model: preprocess checks a request (pipeline/server/requests.py), predict scores it
with the version serving now (pipeline/server/versions.py) and records it (pipeline/server/online.py), postprocess
writes TF Serving's response (or the V2 one). Nothing about HTTP: KServe's server and our routes
(pipeline/server/app.py) own that."""

import dataclasses
import uuid

import kserve
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

import contract
from pipeline.online_store.store import OnlineStoreError
from pipeline.server.history import with_history
from pipeline.server.requests import BadRequestError, Parsed
from pipeline.server.versions import Loaded, Versions


class RequestRefusedError(Exception):
    """A request answered with a 4xx (status) and {"error": message}, as TF Serving answers."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class V1Call:
    """A TF Serving REST predict body (decoded JSON), and the version the route pinned (None: the one serving)."""

    body: object
    version: int | None = None


@dataclasses.dataclass(frozen=True)
class _Request:
    loaded: Loaded
    parsed: Parsed
    v2_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Scored:
    """A request's scores and the version that gave them."""

    request: _Request
    probabilities: np.ndarray
    decisions: np.ndarray


def _flat(data, shape) -> list:
    """A V2 tensor's data as a flat list (JSON clients send [[x], [y]] for shape [n, 1] as often as [x, y])."""
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if isinstance(data, list) and data and all(isinstance(v, list) and len(v) == 1 for v in data):
        return [v[0] for v in data]
    return data if isinstance(data, list) else [data]


def _check_examples(examples: list[bytes]) -> None:
    """Each of a request's examples parses as a tf.Example (what the examples signature would fail on, named here).

    Raises:
      RequestRefusedError: the first that does not, by its row.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    for i, raw in enumerate(examples):
        try:
            example_pb2.Example.FromString(raw)
        except DecodeError:
            raise RequestRefusedError(400, f"row {i}: the b64 value is not a serialized tf.Example") from None


class FraudModel(kserve.Model):
    """The fraud model, as the version serving/ designates (swapped under it by Versions).

    Args:
      name: the model name on the routes (contract.SERVING_MODEL_NAME).
      versions: the serving folder's versions.
      recorder: where scored requests are recorded (None: not recorded).
    """

    def __init__(self, name: str, versions: Versions, recorder=None):
        super().__init__(name)
        self.versions = versions
        self.recorder = recorder

    def load(self) -> bool:
        self.versions.start()
        self.ready = True
        return self.ready

    def preprocess(self, payload, headers=None) -> _Request:
        loaded = self.versions.current  # the version this request is scored by, to the end
        try:
            if isinstance(payload, InferRequest):
                tensors = [(i.name, i.datatype, list(i.shape), _flat(i.data, i.shape)) for i in payload.inputs]
                parsed = with_history(loaded, loaded.reader.parse_v2(tensors))
                return _Request(loaded, parsed, payload.id or str(uuid.uuid4()))
            if not isinstance(payload, V1Call):
                raise BadRequestError("the request body must be a JSON object with 'instances' or 'inputs'")
            if payload.version is not None and payload.version != loaded.version:
                raise RequestRefusedError(
                    404,
                    f"Servable not found for request: Specific({self.name}, {payload.version}): version "
                    f"{loaded.version} is the one serving",
                )
            return _Request(loaded, with_history(loaded, loaded.reader.parse(payload.body)))
        except BadRequestError as e:
            raise RequestRefusedError(e.status, str(e)) from None
        except OnlineStoreError as e:
            raise RequestRefusedError(503, f"the history features cannot be had: {e}") from None

    def predict(self, request: _Request, headers=None) -> Scored:
        import tensorflow as tf

        model, parsed = request.loaded.model, request.parsed
        try:
            if parsed.signature == contract.SERVING_SIGNATURE:
                examples = parsed.inputs[contract.SERVING_INPUT]
                _check_examples(examples)
                probabilities, decisions = model.score(examples)
            else:
                probabilities, decisions = model.score_features(parsed.inputs, parsed.matrix)
        except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as e:
            # What the model itself refuses: a tf.Example that lacks a feature it needs, or one of the wrong type
            # (TensorFlow's message can hold the example's bytes, which are not always text).
            said = e.message.splitlines()[0] if isinstance(e, tf.errors.OpError) else "a value is not what it takes"
            raise RequestRefusedError(400, f"the model cannot score this request: {said}") from None
        if self.recorder is not None:
            self.recorder.add(request.loaded, parsed, probabilities, decisions)
        return Scored(request, probabilities, decisions)

    def postprocess(self, scored: Scored, headers=None):
        request, version = scored.request, str(scored.request.loaded.version)
        probabilities = [[float(p)] for p in scored.probabilities]
        decisions = [[int(d)] for d in scored.decisions]
        if request.v2_id is not None:
            n = len(probabilities)
            outputs = [
                InferOutput(contract.PROBABILITY_OUTPUT, [n, 1], "FP32", [p[0] for p in probabilities]),
                InferOutput(contract.DECISION_OUTPUT, [n, 1], "INT64", [d[0] for d in decisions]),
            ]
            return InferResponse(request.v2_id, self.name, outputs, model_version=version)
        if request.parsed.columnar:
            body = {"outputs": {contract.PROBABILITY_OUTPUT: probabilities, contract.DECISION_OUTPUT: decisions}}
        else:
            body = {
                "predictions": [
                    {contract.PROBABILITY_OUTPUT: p, contract.DECISION_OUTPUT: d}
                    for p, d in zip(probabilities, decisions)
                ]
            }
        # Beside TF Serving's fields (a client reading `predictions` or `outputs` does not see it): the version.
        body["model_version"] = version
        return body
