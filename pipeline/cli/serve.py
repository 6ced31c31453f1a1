"""The serve command: the model server (pipeline/server) for the version serving/ designates, in the serving
environment, with the skew of its recorded windows measured here as they close."""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from contract import OutputLayout
from pipeline.cli.build import DEFAULT_OUTPUT
from pipeline.cli.flags import UsageError
from pipeline.definition import faults
from pipeline.definition import status as st

# The serving environment's interpreter: FRAUD_PIPELINE_SERVE_PYTHON, else the one `make serve` sets up beside the
# project (scripts/bootstrap-serve-venv).
SERVE_PYTHON_ENV = "FRAUD_PIPELINE_SERVE_PYTHON"
ROOT = Path(__file__).resolve().parents[2]
# How often the windows the server closed are looked for, to measure their skew.
SKEW_SECONDS = 10.0


def serve_python() -> str:
    """The serving environment's python.

    Raises:
      UsageError: it is not set up, saying how to set it up.
    """
    python = os.environ.get(SERVE_PYTHON_ENV) or str(ROOT / ".venv-serve" / "bin" / "python")
    if not os.access(python, os.X_OK):
        raise UsageError(
            f"the model server's environment is not set up ({python} is missing): run `make serve`, or "
            f"scripts/bootstrap-serve-venv, or set {SERVE_PYTHON_ENV} to a python with requirements-serve.lock"
        )
    return python


def register(commands) -> None:
    """Adds serve to the command parsers."""
    srv = commands.add_parser(
        "serve",
        help="serve the pushed model: TF Serving's REST API and KServe's V2 on KServe's model server",
        description=(
            "Start KServe's model server for the version serving/ designates (the newest complete one, or what "
            "`rollback` made current), its manifest checked and its warm-up requests replayed before it is ready. "
            "It answers TF Serving's REST API (POST /v1/models/fraud:predict with instances or inputs, on "
            "serving_default with base64 tf.Examples or serving_features by name; GET /v1/models/fraud and "
            "/metadata), the Open Inference Protocol (V2), liveness, readiness and Prometheus metrics. A push or a "
            "rollback is picked up while serving (the folder is watched; SIGHUP looks at once), warmed up before "
            "it takes traffic; every response names the version that scored it. Requests are recorded in windows "
            "under OUTPUT/scoring (for `outcomes`), whose serving skew is measured as they close. Exit codes: "
            f"{st.EXIT_OK} stopped, {st.EXIT_USAGE} bad command line or no serving environment, "
            f"{st.EXIT_ENVIRONMENT} nothing servable (no version, or the designated one does not verify)."
        ),
    )
    srv.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder (default: ./%(default)s)"
    )
    srv.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8501, help="the HTTP port (default: %(default)s, TF Serving's)")
    srv.add_argument(
        "--key",
        metavar="FIELD",
        help="a field each row may carry besides the features (a transaction id), recorded with its score so that "
        "`outcomes` joins labels by it (default: the dataset spec's key)",
    )
    srv.add_argument("--poll-seconds", type=float, default=2.0, help="how often serving/ is looked at (default: 2)")
    srv.add_argument("--max-rows", type=int, metavar="N", help="rows a request may carry (default: 10000)")
    srv.add_argument("--max-body-bytes", type=int, metavar="N", help="a request body's size limit (default: 8 MiB)")
    srv.add_argument("--no-record", action="store_true", help="do not record requests under OUTPUT/scoring")
    srv.add_argument(
        "--online-store",
        metavar="URL",
        help="where a dataset spec's history features are kept: a postgresql:// URL (default: the spec's "
        "online_store, else an SQLite file under OUTPUT/online_store/, shared with predict and outcomes)",
    )
    srv.add_argument("--window-rows", type=int, metavar="N", help="rows a recorded window holds (default: 10000)")
    srv.add_argument("--window-seconds", type=float, metavar="S", help="a window's age at most (default: 300)")
    srv.add_argument("--keep-windows", type=int, metavar="N", help="windows kept, the oldest removed (default: 200)")
    srv.add_argument("--access-log", action="store_true", help="a log line a request")
    srv.add_argument(
        "--manifest",
        metavar="FILE",
        help="write a KServe InferenceService for this server (a custom predictor from the pipeline's image) to "
        "FILE instead of serving; with --image and --storage-uri",
    )
    srv.add_argument("--image", metavar="IMAGE", help="the pipeline's image (with --manifest)")
    srv.add_argument(
        "--storage-uri", metavar="URI", help="where the output folder is, e.g. gs://bucket/output (with --manifest)"
    )
    srv.set_defaults(handler=_serve)


def _server_args(args: argparse.Namespace) -> list[str]:
    argv = ["--output", args.output, "--host", args.host, "--port", str(args.port)]
    argv += ["--poll-seconds", str(args.poll_seconds)]
    for flag in ("key", "max_rows", "max_body_bytes", "window_rows", "window_seconds", "keep_windows", "online_store"):
        value = getattr(args, flag)
        if value is not None:
            argv += ["--" + flag.replace("_", "-"), str(value)]
    argv += ["--no-record"] if args.no_record else []
    argv += ["--access-log"] if args.access_log else []
    return argv


def _serve(args: argparse.Namespace) -> int:
    if args.manifest:
        from pipeline.server import manifest

        if not args.image or not args.storage_uri:
            raise UsageError("--manifest needs --image (the pipeline's image) and --storage-uri (the output folder)")
        Path(args.manifest).write_text(manifest.inference_service(args.image, args.storage_uri, _server_args(args)))
        print(f"InferenceService: {args.manifest}")
        return st.EXIT_OK
    serving_dir = OutputLayout(args.output).serving_dir
    if not Path(serving_dir).is_dir():
        raise UsageError(f"--output {args.output}: no serving/ folder (run `fraud-pipeline run` first)")
    python = serve_python()
    if not args.no_record:
        faults.check_writable(args.output)
    server = subprocess.Popen([python, "-m", "pipeline.server", *_server_args(args)], cwd=str(ROOT))

    def forward(signum, _frame):
        server.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    code = None
    try:
        while code is None:
            try:
                code = server.wait(timeout=SKEW_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if not args.no_record:
                _measure(args.output, serving_dir)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
    return code


def _measure(output: str, serving_dir: str) -> None:
    """The serving skew of the windows the server closed (TFDV: here, not in the serving environment)."""
    from pipeline.scoring import record as record_lib

    pending = [f for f in record_lib.online_batches(output) if record_lib.read_batch(f).get("skew", {}).get("pending")]
    if not pending:
        return
    from pipeline.scoring import skew

    for folder in skew.measure_recorded(output, serving_dir):
        found = record_lib.read_batch(folder)["skew"]
        exceeded = found.get("exceeded") or []
        said = "; ".join(exceeded) if exceeded else ("within thresholds" if found.get("measured") else found["reason"])
        print(f"serving skew of {folder.name}: {said}", file=sys.stderr, flush=True)
