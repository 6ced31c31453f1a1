"""The model server process: KServe's REST server (its V1 and V2 routes, health, readiness and Prometheus metrics)
with TF Serving's REST routes on top, over FraudModel. Started by `fraud-pipeline serve` in the serving environment,
or as `python -m pipeline.server` in a serving image (a KServe InferenceService's custom predictor).

TF Serving's routes (its REST API page), answered the way TF Serving answers them:
    POST /v1/models/NAME[/versions/N]:predict    instances (rows) or inputs (columns); serving_default (base64
                                                 tf.Examples) or serving_features (the raw features by name)
    GET  /v1/models/NAME[/versions/N]            model_version_status
    GET  /v1/models/NAME[/versions/N]/metadata   the signatures
KServe's own: GET / and /v2/health/live (liveness), /v2/health/ready and /v2/models/NAME/ready (readiness),
POST /v2/models/NAME/infer (the Open Inference Protocol), GET /metrics (Prometheus).
A body is capped (413 past --max-body-bytes, before it is read whole) and must be JSON (415 for another type).
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import sys

import contract
from pipeline.server import online
from pipeline.server.requests import MAX_BODY_BYTES, MAX_ROWS, BadRequestError, content_type_ok, decode_json
from pipeline.server.versions import NoServableVersionError, Versions

log = logging.getLogger("fraud-pipeline.server")

# The exit code of a server that cannot start on what the serving folder holds (as the CLI's faults: status 7).
EXIT_NO_VERSION = 7
_METHOD = "tensorflow/serving/predict"


class _TooLargeError(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a POST's Content-Type must be JSON's (415) and its body at most max_bytes (413), counted as it
    arrives, so an oversized body is refused before it is held whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not content_type_ok(content_type):
            return await _send(send, 415, f"Content-Type {content_type!r} is not JSON; send application/json")
        length = headers.get(b"content-length", b"")
        if length and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send(
                send, 413, f"the body ({length.decode('latin-1')} bytes) is over the {self.max_bytes}-byte limit"
            )
        received = 0
        started = False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLargeError()
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLargeError:
            if not started:
                await _send(send, 413, f"the body is over the {self.max_bytes}-byte limit")


async def _send(send, status: int, message: str) -> None:
    await _send_json(send, status, {"error": message})


async def _send_json(send, status: int, content, headers: list | None = None) -> None:
    import orjson

    body = orjson.dumps(content)
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def json_response(body, status: int = 200, headers: dict | None = None):
    """A JSON response (orjson, as KServe's own responses)."""
    import orjson
    from starlette.responses import Response

    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _signature_def(model, name: str) -> dict:
    import tensorflow as tf

    function = model.signatures[name]

    def tensor(spec) -> dict:
        dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
        return {
            "dtype": "DT_" + tf.as_dtype(spec.dtype).name.upper(),
            "tensor_shape": {"dim": dims, "unknown_rank": False},
            "name": spec.name or "",
        }

    inputs = function.structured_input_signature[1]
    return {
        "inputs": {k: tensor(v) for k, v in inputs.items()},
        "outputs": {k: tensor(v) for k, v in function.structured_outputs.items()},
        "method_name": _METHOD,
    }


# TF Serving's predict paths: /v1/models/NAME[/versions/N]:predict.
_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/([^/:]+))?:predict")


def _error_statuses() -> dict:
    """What KServe's app answers its own errors with (kserve/errors.py's handlers), for the predict route that runs
    before that app."""
    from kserve import errors

    return {
        errors.InvalidInput: 400,
        errors.ModelNotFound: 404,
        errors.ModelNotReady: 503,
        errors.ServerNotReady: 503,
        errors.ServerNotLive: 503,
        errors.UnsupportedProtocol: 501,
        NotImplementedError: 501,
    }


def _refusal(model_name: str, name: str, version: str | None) -> tuple[int, str] | None:
    """Why a route's model name or version is refused (status, message), or None."""
    if name != model_name:
        return 404, f"Servable not found for request: Latest({name}): this server serves {model_name!r}"
    if version is not None and not version.isdigit():
        return 400, f"version {version!r} is not a number"
    return None


class PredictRoute:
    """ASGI, in front of KServe's app: TF Serving's predict routes answered on the ASGI messages themselves, every
    other request passed to KServe's app as it is. The predict call still goes through KServe's data plane and model
    (its Prometheus histograms, its readiness); what it skips is the app's middleware and router
    (docs/benchmarks.md, "The model server", says what that gained).

    Args:
      app: KServe's app (its routes, health, metrics, V2).
      model: the FraudModel.
      dataplane: KServe's data plane of the model server.
      max_bytes: the body cap (BodyLimit's).
    """

    def __init__(self, app, model, dataplane, max_bytes: int):
        from pipeline.server.model import RequestRefusedError

        self.app, self.model, self.dataplane = app, model, dataplane
        self.refused_error = RequestRefusedError
        self.statuses = _error_statuses()
        self.limited = BodyLimit(self._predict, max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and _PREDICT_PATH.fullmatch(scope["path"]):
            return await self.limited(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _predict(self, scope, receive, send):
        from pipeline.server.model import V1Call

        name, version = _PREDICT_PATH.fullmatch(scope["path"]).groups()
        refused = _refusal(self.model.name, name, version)
        if refused is not None:
            return await _send(send, *refused)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            body = decode_json(b"".join(chunks))
        except BadRequestError as e:
            return await _send(send, e.status, str(e))
        pinned = int(version) if version is not None else None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            response, _ = await self.dataplane.infer(name, V1Call(body, pinned), headers=headers)
        except self.refused_error as e:
            return await _send(send, e.status, str(e))
        except Exception as e:  # noqa: BLE001 - answered as KServe's app answers it: never a dropped connection
            status = next((s for kind, s in self.statuses.items() if isinstance(e, kind)), 500)
            if status == 500:
                log.exception("predict failed")
            return await _send(send, status, str(e))
        await _send_json(send, 200, response, [(b"x-model-version", response.get("model_version", "").encode())])


def add_routes(app, model) -> None:
    """TF Serving's status and metadata routes on KServe's app, before KServe's own (Starlette takes the first route
    that matches: GET /v1/models/NAME answers model_version_status, not KServe's {name, ready}). Its predict routes
    are PredictRoute's."""
    from pipeline.server.model import RequestRefusedError

    def refuse(status: int, message: str):
        return json_response({"error": message}, status=status)

    def servable(name: str, version: str | None):
        refused = _refusal(model.name, name, version)
        return None if refused is None else refuse(*refused)

    async def status(name: str, version: str | None = None):
        refused = servable(name, version)
        if refused is not None:
            return refused
        found = sorted(model.versions.statuses.values(), key=lambda s: -s.version)
        if version is not None:
            found = [s for s in found if s.version == int(version)]
            if not found:
                return refuse(404, f"Could not find version {version} of model {name}")
        return {"model_version_status": [s.as_json() for s in found]}

    async def status_version(name: str, version: str):
        return await status(name, version)

    async def metadata(name: str, version: str | None = None):
        refused = servable(name, version)
        if refused is not None:
            return refused
        loaded = model.versions.current
        if version is not None and int(version) != loaded.version:
            return refuse(404, f"Servable not found for request: Specific({name}, {version})")
        signatures = {n: _signature_def(loaded.model, n) for n in loaded.reader.signatures}
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(loaded.version)},
            "metadata": {"signature_def": {"signature_def": signatures}},
        }

    async def metadata_version(name: str, version: str):
        return await metadata(name, version)

    async def refused_request(_request, exc: RequestRefusedError):
        # A V2 request's refusal (the V1 ones are PredictRoute's).
        return refuse(exc.status, str(exc))

    app.add_exception_handler(RequestRefusedError, refused_request)
    for path, handler, method in (
        ("/v1/models/{name}", status, "GET"),
        ("/v1/models/{name}/versions/{version}", status_version, "GET"),
        ("/v1/models/{name}/metadata", metadata, "GET"),
        ("/v1/models/{name}/versions/{version}/metadata", metadata_version, "GET"),
    ):
        app.add_api_route(path, handler, methods=[method], response_model=None, include_in_schema=False)


def _metrics(versions: Versions, recorder) -> None:
    """The server's own series beside KServe's (request latency by stage): the version serving, swaps, dropped rows."""
    from prometheus_client import Gauge

    Gauge("fraud_model_version", "the pushed version serving now").set_function(
        lambda: versions.current.version if versions.current else 0
    )
    Gauge("fraud_model_swaps", "versions swapped in since the server started").set_function(lambda: versions.swaps)
    if recorder is not None:
        Gauge("fraud_online_rows_dropped", "scored rows not recorded (the record's queue was full)").set_function(
            lambda: recorder.dropped_total
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.server", description=__doc__.split("\n")[0])
    p.add_argument(
        "--output", required=True, help="the output folder: serving/ holds the versions, scoring/ the record"
    )
    p.add_argument("--serving-dir", help="the folder of versions (default: OUTPUT/serving)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--model-name", default=contract.SERVING_MODEL_NAME)
    p.add_argument("--key", help="a field each row may carry (a transaction id), recorded with its score")
    p.add_argument("--poll-seconds", type=float, default=2.0)
    p.add_argument("--max-rows", type=int, default=MAX_ROWS)
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    p.add_argument("--no-record", action="store_true")
    p.add_argument(
        "--online-store",
        help="the history features' store: a postgresql:// URL (default: the spec's, "
        "else SQLite under OUTPUT/online_store)",
    )
    p.add_argument("--access-log", action="store_true", help="a log line a request")
    p.add_argument("--tf-threads", type=int, default=1, help="TensorFlow's thread pools' size (0: its default)")
    p.add_argument("--window-rows", type=int, default=online.WINDOW_ROWS)
    p.add_argument("--window-seconds", type=float, default=online.WINDOW_SECONDS)
    p.add_argument("--keep-windows", type=int, default=online.KEEP_WINDOWS)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    from kserve import ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.model_server import app
    from kserve.protocol.rest.server import RESTServer

    from pipeline.server.model import FraudModel

    if args.tf_threads:
        import tensorflow as tf

        # One row's graph gains nothing from a pool of threads, and handing it to one costs more than it runs.
        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    args.output = os.path.abspath(args.output)
    serving_dir = args.serving_dir or contract.OutputLayout(args.output).serving_dir
    recorder = None
    versions = Versions(
        serving_dir,
        args.key,
        args.max_rows,
        on_swap=lambda old, new: recorder and recorder.flush(),
        store=(args.output, args.online_store),
    )
    try:
        versions.start()
    except NoServableVersionError as e:
        print(f"fraud-pipeline serve: {e}", file=sys.stderr)
        return EXIT_NO_VERSION
    if not args.no_record:
        recorder = online.Recorder(
            args.output, versions.current.reader.key, args.window_rows, args.window_seconds, max(1, args.keep_windows)
        )
    model = FraudModel(args.model_name, versions, recorder)
    model.ready = True
    # KServe's ModelServer builds the model registry and the data plane; its REST server is started here with the
    # host set (ModelServer binds every address; a server started by hand listens on loopback unless told).
    server = ModelServer(http_port=args.port, enable_grpc=False, enable_latency_logging=False)
    # A log line a request (KServe's timings, uvicorn's access log) costs more than the model's call; --access-log
    # turns the access log back on.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if not args.access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    server.register_model(model)
    add_routes(app, model)
    app.add_middleware(BodyLimit, max_bytes=args.max_body_bytes)
    _metrics(versions, recorder)
    rest = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, args.port)
    rest.config.host = args.host
    # uvicorn takes an app object as it takes the import string; KServe's start still builds its app (middleware,
    # routes, error handlers) on the object this one passes every other request to.
    rest.config.app = PredictRoute(app, model, server.dataplane, args.max_body_bytes)
    versions.watch(args.poll_seconds)
    signal.signal(signal.SIGHUP, lambda *_: versions.wake())
    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again for the handler it found:
    # this one lets the process go on to close the open window before it exits.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    log.info("serving %s version %s on http://%s:%s", args.model_name, versions.current.version, args.host, args.port)
    try:
        import uvloop  # the event loop uvicorn prefers (in the serving lock): less of each request's time in I/O

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(rest.start())
    finally:
        versions.stop()
        if recorder is not None:
            recorder.close()
    return 0
