"""Helpers the test modules share: running the CLI, reading what a run wrote, the browser check (fixtures: conftest)."""

import contextlib
import csv
import dataclasses
import glob
import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import contract
from pipeline.definition import config as cfg
from tests import waits

ROOT = Path(__file__).resolve().parent.parent
# The pipeline's components: the gate and what feeds it, then what runs only after the gate passed.
UPSTREAM_OF_TRAINING = {
    cfg.EXAMPLE_GEN,
    cfg.SCHEMA_IMPORTER,
    cfg.STATISTICS_GEN,
    cfg.EXAMPLE_VALIDATOR,
    cfg.DISTRIBUTION_VALIDATOR,
    cfg.GATE,
}
DOWNSTREAM_OF_GATE = {cfg.TRANSFORM, cfg.TRAINER, cfg.SERVING_BASELINE, cfg.EVALUATOR, cfg.PUSHER}
ALL_COMPONENTS = UPSTREAM_OF_TRAINING | DOWNSTREAM_OF_GATE
# What `fraud-pipeline compile` is given in the tests (nothing is sent anywhere).
IMAGE = "europe-docker.pkg.dev/demo/fraud/fraud-pipeline:test"
ROOT_URI = "gs://demo-bucket/fraud/root"
DATA_URI = "gs://demo-bucket/fraud/data/"
BEAM_ARGS = ("--runner=DataflowRunner", "--project=demo", "--region=europe-west4", "--temp_location=gs://demo/tmp")
# Report pages tag each number with its path in the JSON record, and embed each figure.
NUMBER = re.compile(r'<span class="num" data-key="([^"]+)" data-value="([^"]+)">')
FIGURE = re.compile(r'<figure id="fig-([a-z_]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)">')
FIXTURE = ROOT / "tests" / "fixtures" / "creditcard_fixture.csv.gz"
# The console script installed next to this interpreter: tests drive the real command.
CLI = Path(sys.executable).parent / "fraud-pipeline"


@dataclasses.dataclass
class CliRun:
    """A finished `fraud-pipeline run`."""

    returncode: int
    stdout: str
    stderr: str
    output: Path
    # summary.json as the run left it (a later run into the same folder overwrites the file).
    summary: dict | None
    # Every file under OUTPUT/serving after the run: relative path -> (size, mtime in ns).
    serving: dict

    @property
    def metadata_path(self) -> str:
        return str(self.output / "metadata.sqlite")


# Seconds a `fraud-pipeline run` of the fixture may take in a test, on the direct runner; on a real engine
# (conftest._on_engine, workers from each TaskManager's pool) ENGINE_RUN_TIMEOUT. Each is set from the longest wait
# measured with a second `make test` beside the suite, with room over it (docs/testing.md, "Timeouts").
RUN_TIMEOUT = 1200
ENGINE_RUN_TIMEOUT = 1800
# The engines' probe job (tests/beam_cluster/probe.py): a worker per TaskManager started by Beam's boot, each
# installing the staged project.
PROBE_TIMEOUT = 900
# A compiled spec's rehearsal (`fraud-pipeline rehearse`, each task a process; conftest's `rehearsed` runs them two
# at a time): the tightest of the suite beside a second suite (docs/testing.md, "Timeouts").
REHEARSAL_TIMEOUT = 3600


def run_cli(output: Path, *args: str, timeout: float = RUN_TIMEOUT) -> CliRun:
    """Runs `fraud-pipeline run --output OUTPUT ARGS...` in a subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [str(CLI), "run", "--output", str(output), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    summary_path = output / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, output, summary, snapshot(output / "serving"))


def snapshot(folder: Path) -> dict:
    """Relative path -> (size, mtime_ns) of every file below folder; {} when it does not exist."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def exec_properties(component) -> dict:
    """A component's properties as an orchestrator hands them to its executor: protos as JSON text, unset ones left
    out."""
    from tfx.utils import proto_utils

    return {
        name: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
        for name, value in component.exec_properties.items()
        if value is not None
    }


def schema_artifact(folder: Path):
    """A Schema artifact in `folder` holding the curated schema (schema.pbtxt)."""
    from tfx.types import standard_artifacts
    from tfx.utils import io_utils

    schema = standard_artifacts.Schema()
    schema.uri = str(folder)
    io_utils.copy_file(contract.SCHEMA_FILE, str(folder / "schema.pbtxt"), overwrite=True)
    return schema


def read_csv_rows(path: Path) -> list[list[str]]:
    """The rows of a (gzip) CSV file, header first."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        return list(csv.reader(f))


def write_csv_rows(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


SAMPLE = ROOT / "data" / "creditcard_sample.csv.gz"


def shifted_copy(source: Path, target: Path, features: tuple[str, ...], sigmas: float, newest_share: float) -> Path:
    """A copy of a time-ordered CSV file with features shifted by `sigmas` standard deviations in its newest rows."""
    import statistics

    header, *rows = read_csv_rows(source)
    columns = [header.index(f) for f in features]
    shift = {c: sigmas * statistics.pstdev(float(r[c]) for r in rows) for c in columns}
    first = int(len(rows) * (1 - newest_share))
    for row in rows[first:]:
        for c in columns:
            row[c] = repr(float(row[c]) + shift[c])
    return write_csv_rows(target, [header, *rows])


def executions_per_node(metadata_path: str) -> dict[str, list[str]]:
    """Component id -> the states of all its executions in the store, straight from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    names = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
    result = {}
    for node in store.get_contexts_by_type("node"):
        node_id = node.name.split(".", 1)[1]
        result[node_id] = [names[e.last_known_state] for e in store.get_executions_by_context(node.id)]
    return result


CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes advise: no sandbox as root, and no background connections on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclasses.dataclass
class BrowserView:
    """What headless Chromium saw of a page: console messages, uncaught errors, failed loads, a screenshot."""

    console: list
    errors: list
    failed_requests: list
    screenshot: Path
    # The page's visible text and its first heading.
    text: str = ""
    heading: str = ""


def open_in_chromium(page_path: Path, screenshot: Path) -> BrowserView:
    """Opens a local HTML file in headless Chromium (Debian's package) and takes a full-page screenshot."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            console, errors, failed = [], [], []
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            text = page.inner_text("body")
            heading = page.inner_text("h1") if page.query_selector("h1") else ""
        finally:
            browser.close()
    return BrowserView(console, errors, failed, screenshot, text, heading)


def assert_not_blank(png: Path) -> None:
    """A screenshot with real content: many non-white pixels and a spread of tones."""
    from PIL import Image, ImageStat

    image = Image.open(png).convert("L")
    pixels = image.getdata()
    inked = sum(1 for v in pixels if v < 200) / len(pixels)
    assert inked > 0.02, f"only {inked:.1%} of {png} is not white"
    assert ImageStat.Stat(image).stddev[0] > 20


def at(record: dict, key: str):
    """The value at a 'a/b/c' path in a JSON record."""
    value = record
    for step in key.split("/"):
        value = value[int(step)] if isinstance(value, list) else value[step]
    return value


def report_path(run: CliRun) -> Path:
    """The report the run printed it wrote."""
    lines = [line for line in run.stdout.splitlines() if line.startswith("report: ")]
    assert len(lines) == 1, run.stdout + run.stderr[-2000:]
    return Path(lines[0].removeprefix("report: "))


def split_files(run: CliRun, split: str) -> list[str]:
    """The files of one split ExampleGen wrote in a run's output folder."""
    pattern = run.output / "tfx" / cfg.EXAMPLE_GEN / "examples" / "*" / contract.split_dir(split)
    folders = glob.glob(str(pattern))
    assert len(folders) == 1, folders
    return glob.glob(os.path.join(folders[0], "*"))


def raw_examples(run: CliRun, split: str) -> list[bytes]:
    """The serialized tf.Examples of one split ExampleGen wrote."""
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(split_files(run, split), compression_type="GZIP")]


def trainer_rows(
    summary: dict,
    split: str,
    names=(contract.TIME, *contract.MODEL_INPUTS),
    label: str = contract.LABEL,
    through_accessor: bool = False,
):
    """What the Trainer of a run reads of a split (trainer.task.load_split): the raw examples ExampleGen wrote through
    the run's Transform graph, as (the named Transform outputs, labels), rows sorted by the first name first; read
    as the Trainer reads them, or through TFX's data accessor."""
    import tensorflow_transform as tft
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.types import standard_artifacts

    from trainer.task import load_split

    examples = standard_artifacts.Examples()
    examples.uri = summary["artifacts"]["examples"]
    # The Trainer's own dataset factory for ExampleGen's artifact (tfx.components.trainer.fn_args_utils).
    accessor = DataAccessor(tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []), None, None)
    pattern = os.path.join(examples.uri, contract.split_dir(split), "*")
    graph = tft.TFTransformOutput(summary["artifacts"]["transform_graph"])
    return load_split(pattern, accessor, graph, names=names, label=label, through_accessor=through_accessor)


def compile_spec(path: Path, target: str, *extra: str, data: str = DATA_URI, beam_args=BEAM_ARGS) -> Path:
    """Runs `fraud-pipeline compile` for a target with the test image, root, data and Beam args.

    In this process, through the command's own entry point (pipeline.cli.main): a compile spends most of its time
    importing TFX, which the test process has done once already.
    """
    from pipeline import cli

    args = ["compile", "--target", target, "--image", IMAGE, "--pipeline-root", ROOT_URI]
    args += ["--data", data, "--output", str(path), *extra]
    args += [f"--beam-arg={a}" for a in beam_args]
    assert cli.main(args) == 0, args
    return path


# Fixtures that run the pipeline in subprocesses (minutes, so only in the e2e tier; compiling it takes seconds):
# each is declared with @shared_run, which puts its name here.
E2E_FIXTURES: set[str] = set()
# Runs declared apart: the fixture's name -> its xdist group (see xdist_groups).
_APART: dict[str, str] = {}


def shared_run(apart: str | None = None, scope: str = "session"):
    """A fixture that runs the pipeline. `make test` runs the suite on two pytest-xdist workers (--dist loadgroup):
    the tests of one shared run are one group, run by one worker, so each run is made once; runs a test uses together
    are one group (xdist_groups). `apart` names a group of its own for a run that must not join another's: the real
    engines' runs (each takes gigabytes and keeps both cores busy) are one group, run one after the other, and their
    worker makes its own time_run (a minute) so the two long groups run at once."""

    def declare(function):
        E2E_FIXTURES.add(function.__name__)
        if apart:
            _APART[function.__name__] = apart
        return pytest.fixture(scope=scope)(function)

    return declare


def runs_of(item) -> set[str]:
    """The shared runs a collected test uses (directly, through other fixtures, or by name as a parameter)."""
    names = set(getattr(item, "fixturenames", ()))
    # A test parametrized by a run's name reads it with request.getfixturevalue.
    names |= {v for v in getattr(getattr(item, "callspec", None), "params", {}).values() if isinstance(v, str)}
    return E2E_FIXTURES & names


def xdist_groups(items) -> dict[str, str]:
    """Each shared run's xdist group, derived from the tests: runs that one test uses together are one group (named
    after the smallest name), a run declared apart is its declared group, whatever else the test uses."""
    parent = {name: name for name in E2E_FIXTURES}

    def root(name):
        while parent[name] != name:
            name = parent[name]
        return name

    for item in items:
        joined = sorted(r for r in runs_of(item) if r not in _APART)
        for other in joined[1:]:
            a, b = sorted((root(joined[0]), root(other)))
            parent[b] = a
    return {name: _APART.get(name) or root(name) for name in E2E_FIXTURES}


def group_of(item, groups: dict[str, str]) -> str | None:
    """A test's xdist group: its run declared apart if it uses one, else its runs' group; None without a run."""
    runs = sorted(runs_of(item), key=lambda r: (r not in _APART, r))
    return groups[runs[0]] if runs else None


def verdict_exit(run: CliRun) -> int:
    """The exit code a run that got to its verdict must end with: 0 blessed, 4 not blessed (and completed)."""
    from pipeline.definition import status

    assert run.summary["status"] in (status.COMPLETED, status.NOT_BLESSED), run.summary["status"]
    return status.EXIT_OK if run.summary["blessed"] else status.EXIT_NOT_BLESSED


def serving_python() -> str:
    """The model server's environment's python (pipeline/cli/serve.py finds it), or the calling test module skipped
    saying why; under FRAUD_PIPELINE_REQUIRE_SERVER (.ci/run) its absence is an error instead."""
    from pipeline.cli.flags import UsageError
    from pipeline.cli.serve import serve_python

    try:
        return serve_python()
    except UsageError as e:
        if os.environ.get("FRAUD_PIPELINE_REQUIRE_SERVER"):
            raise RuntimeError(f"{e}; FRAUD_PIPELINE_REQUIRE_SERVER is set") from e
        pytest.skip(str(e), allow_module_level=True)


# -- the model server -------------------------------------------------------------------------------------------
# Seconds: waits with a wide margin over what the server's start takes alone (TensorFlow's import and the warm-up:
# docs/benchmarks.md, "The model server").
START_TIMEOUT = 240
SWAP_TIMEOUT = 120
REQUEST_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `fraud-pipeline serve` process and an HTTP client for it."""

    def __init__(self, output: Path, *flags: str):
        self.output, self.port = output, free_port()
        self.log = output / f"serve-{self.port}.log"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [str(CLI), "serve", "--output", str(output), "--port", str(self.port), *flags],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            sent = {"Content-Type": "application/json"} if data is not None else {}
            connection.request(method, path, data, {**sent, **(headers or {})})
            response = connection.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}, dict(response.getheaders())
        finally:
            connection.close()

    def predict(self, body, version: int | None = None, headers=None):
        path = f"/v1/models/{contract.SERVING_MODEL_NAME}" + (f"/versions/{version}" if version else "") + ":predict"
        return self.request("POST", path, body, headers)

    def wait_ready(self) -> None:
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    waits.waited(START_TIMEOUT, time.monotonic() - started)
                    return
            time.sleep(0.5)
        waits.waited(START_TIMEOUT, time.monotonic() - started, expired=True)
        raise AssertionError(f"not ready after {START_TIMEOUT} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def evaluator_outputs(evaluation: str, blessing: str) -> dict:
    """What an Evaluator execution wrote, comparable between two of them: the metrics of each slice (by slice key,
    serialized: a NaN, e.g. the precision of a slice without a flag, equals only its own bytes), the plots and
    attributions (their records, as a set: Beam orders them as it likes), the validation result (serialized), the
    eval config TFMA recorded (parsed: a proto map's order is not kept) and the blessing's files."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    def records(prefix: str) -> list[bytes]:
        paths = sorted(glob.glob(os.path.join(evaluation, prefix + "*")))
        return [bytes(r.numpy()) for path in paths for r in tf.data.TFRecordDataset(path)]

    metrics = [metrics_for_slice_pb2.MetricsForSlice.FromString(r) for r in records("metrics")]
    (validation,) = records("validations")
    return {
        "files": sorted(os.listdir(evaluation)),
        "metrics": {
            m.slice_key.SerializeToString(deterministic=True): m.SerializeToString(deterministic=True) for m in metrics
        },
        "plots": sorted(records("plots")),
        "attributions": sorted(records("attributions")),
        "validation": validation,
        "eval_config": json.loads(Path(evaluation, "eval_config.json").read_text()),
        "blessing": sorted(os.listdir(blessing)),
    }


def metric_names(outputs: dict) -> set[str]:
    """The names of the metrics (diffs marked "diff:") in evaluator_outputs' metrics."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    names = set()
    for serialized in outputs["metrics"].values():
        for kv in metrics_for_slice_pb2.MetricsForSlice.FromString(serialized).metric_keys_and_values:
            names.add(("diff:" if kv.key.is_diff else "") + kv.key.name)
    return names


def rerun_with_tfma(run: "CliRun", which: int, out: Path) -> tuple[dict, dict]:
    """An Evaluator execution of a run done again on its recorded inputs by TFMA's Beam pipeline (the project's
    executor on Beam's direct runner in its multi-threaded mode, where the in-process evaluation steps aside):
    (what the run wrote, what TFMA's pipeline wrote), each as evaluator_outputs gives it."""
    from components.evaluator import component as evaluator
    from pipeline.results import metadata

    inputs, outputs, properties, recorded = metadata.executor_io(run.metadata_path, "Evaluator", which, str(out))
    context = evaluator.EvaluatorExecutor.Context(
        beam_pipeline_args=["--direct_running_mode=multi_threading"], tmp_dir=str(out / "tmp")
    )
    evaluator.EvaluatorExecutor(context).Do(inputs, outputs, properties)
    ours = evaluator_outputs(recorded["evaluation"][0], recorded["blessing"][0])
    theirs = evaluator_outputs(outputs["evaluation"][0].uri, outputs["blessing"][0].uri)
    return ours, theirs


def evaluator_executions(run: "CliRun") -> list[int]:
    """The Evaluator executions of a run's store that ran (not cached), as rerun_with_tfma's `which`."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.results import metadata

    store = metadata.open_store(run.metadata_path)
    (kind,) = [t for t in store.get_execution_types() if t.name.endswith("Evaluator")]
    executions = sorted(store.get_executions_by_type(kind.name), key=lambda e: e.id)
    return [i for i, e in enumerate(executions) if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
