"""Runs the pipeline on the local Beam runner (LocalDagRunner, SQLite ML Metadata) and writes summary.json."""

import contextlib
import dataclasses
import datetime
import logging
import os
import sys
import time
from collections.abc import Callable

from tfx import v1 as tfx

from components.anomalies_gate import describe
from pipeline import gates as gates_lib
from pipeline import status as st
from pipeline import summary as summary_lib
from pipeline.config import OutputLayout, PipelineConfig
from pipeline.metadata import NodeRun, latest_run
from pipeline.pipeline import create_pipeline
from trainer.hparams import ThresholdPolicy

GATE_ID = "AnomaliesGate"


@dataclasses.dataclass
class RunResult:
    """What a local run ended with."""

    status: str
    exit_code: int
    message: str
    summary: dict


class _ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's 'Component X is running/finished' log lines into progress lines."""

    def __init__(self, say: Callable[[str], None]):
        super().__init__(logging.INFO)
        self._say = say
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Component %s is running." and record.args:
            node = record.args[0]
            self._started[node] = time.monotonic()
            self._say(f"running {node} ...")
        elif record.msg == "Component %s is finished." and record.args:
            node = record.args[0]
            self.seconds[node] = round(time.monotonic() - self._started.get(node, time.monotonic()), 1)
            self._say(f"finished {node} ({self.seconds[node]} s)")


def _say(line: str) -> None:
    print(f"[fraud-pipeline] {line}", file=sys.stderr, flush=True)


def _route_logs(log_path: str, progress: logging.Handler) -> Callable[[], None]:
    """Sends all library logs to the run's log file and progress lines to stderr; returns an undo."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    file_handler = logging.FileHandler(log_path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [file_handler, progress]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # TensorFlow's logger writes to stderr itself; send it to the file only.
    tf_logger = logging.getLogger("tensorflow")
    tf_saved = (tf_logger.handlers[:], tf_logger.propagate)
    tf_logger.handlers, tf_logger.propagate = [], True
    # The Transform executor resets absl's verbosity to WARNING (through absl flags), which would hide
    # LocalDagRunner's INFO progress lines for the rest of the run; hold the absl logger at INFO meanwhile.
    absl_logger = logging.getLogger("absl")
    absl_level = absl_logger.level
    absl_logger.setLevel(logging.INFO)
    absl_logger.setLevel = lambda level: None

    def undo():
        del absl_logger.setLevel
        absl_logger.setLevel(absl_level)
        tf_logger.handlers, tf_logger.propagate = tf_saved
        root.handlers, level = saved
        root.setLevel(level)
        logging.captureWarnings(False)
        file_handler.close()

    return undo


def _baseline_note(evaluated: dict | None) -> str | None:
    if evaluated is None:
        return None
    if evaluated["baseline"] is None:
        return "no other blessed model to compare with (as on a first run): only the value thresholds applied"
    return f"compared with the latest blessed model {evaluated['baseline']['model_uri']}"


def _verdict(error, nodes, found, evaluated, pushed) -> tuple:
    """(status, exit code, one-line message) of a finished run."""
    if error is None and evaluated is not None and evaluated["blessed"] and pushed:
        return st.COMPLETED, st.EXIT_OK, f"model blessed and pushed to {pushed}"
    if error is None and evaluated is not None and not evaluated["blessed"]:
        reasons = "; ".join(gates_lib.describe_failure(f) for f in evaluated["not_blessed_reasons"])
        return st.NOT_BLESSED, st.EXIT_NOT_BLESSED, f"model not blessed, nothing pushed: {reasons}"
    if error is None:
        return st.FAILED, st.EXIT_FAILED, "the run ended without a blessed and pushed model; see the log"
    gate = nodes.get(GATE_ID)
    if gate is not None and gate.state == "FAILED" and found:
        return st.DATA_REJECTED, st.EXIT_DATA_REJECTED, "data rejected: " + describe(found)
    failed = [n for n, r in nodes.items() if not _ok(r)]
    where = f" in {failed[0]}" if failed else ""
    return st.FAILED, st.EXIT_FAILED, f"run failed{where}: {type(error).__name__}: {error}".splitlines()[0]


def _ok(node) -> bool:
    return node is not None and node.state in ("COMPLETE", "CACHED")


@dataclasses.dataclass
class Executed:
    """A finished LocalDagRunner run: the error it raised (if any) and each component's execution."""

    error: BaseException | None
    nodes: dict
    run_id: str | None
    seconds: dict
    started: datetime.datetime


@contextlib.contextmanager
def logs_to_file(layout: OutputLayout):
    """Library logs (TensorFlow's deprecation notices among them) go to the run's log file meanwhile."""
    undo = _route_logs(layout.log_path, logging.NullHandler())
    try:
        yield
    finally:
        undo()


def execute(
    pipeline: tfx.dsl.Pipeline, config: PipelineConfig, layout: OutputLayout, say: Callable[[str], None] = _say
) -> Executed:
    """Runs a pipeline with LocalDagRunner, with progress lines on stderr and library logs in the run's log."""
    os.makedirs(layout.root, exist_ok=True)
    progress = _ProgressHandler(say)
    undo_logs = _route_logs(layout.log_path, progress)
    started = datetime.datetime.now(datetime.timezone.utc)
    error: BaseException | None = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # noqa: BLE001 - every failure is classified and reported by the caller.
        error = e
        logging.exception("pipeline run failed")
    finally:
        undo_logs()
    nodes = (
        latest_run(config.metadata_path, config.pipeline_name, since_ms=int(started.timestamp() * 1000))
        if os.path.exists(config.metadata_path)
        else {}
    )
    run_id = next(iter(nodes.values())).run_id if nodes else None
    return Executed(error=error, nodes=nodes, run_id=run_id, seconds=progress.seconds, started=started)


def run_record(done: Executed, config: PipelineConfig, input_path: str) -> dict:
    """What every run's JSON record starts with: the run, its input and splits, and each component's state."""
    return {
        "run_id": done.run_id,
        "input": {"path": input_path, "split": config.split},
        "splits": summary_lib.split_counts(done.nodes["StatisticsGen"]) if _ok(done.nodes.get("StatisticsGen")) else {},
        "hparams": config.hparams.to_dict(),
        "components": {n: {"state": r.state, "seconds": done.seconds.get(n)} for n, r in done.nodes.items()},
        "started_at": done.started.isoformat(timespec="seconds"),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _operating_threshold(trainer: NodeRun | None, evaluated: dict | None) -> dict | None:
    """The model's operating threshold, what it did on eval (where it was chosen) and on test (TFMA)."""
    if trainer is None:
        return None
    chosen = summary_lib.operating_threshold(trainer)
    chosen["policy_description"] = ThresholdPolicy.from_dict(chosen["policy"]).describe()
    if evaluated is not None:
        overall = evaluated["overall"]
        chosen["test"] = {k: overall.get(k) for k in ("tp", "fp", "tn", "fn", "precision", "recall")}
    return chosen


def _artifacts(nodes: dict) -> dict:
    """The URIs of the run's main artifacts (what the report reads)."""
    wanted = {
        "examples": ("CsvExampleGen", "examples"),
        "statistics": ("StatisticsGen", "statistics"),
        "transform_graph": ("Transform", "transform_graph"),
        "model": ("Trainer", "model"),
        "evaluation": ("Evaluator", "evaluation"),
    }
    return {
        name: nodes[node].output_uri(key)
        for name, (node, key) in wanted.items()
        if _ok(nodes.get(node)) and nodes[node].outputs.get(key)
    }


def run(config: PipelineConfig, layout: OutputLayout, input_path: str, say: Callable[[str], None] = _say) -> RunResult:
    """Runs the pipeline locally, then reads ML Metadata to write summary.json.

    Args:
      config: the pipeline config; its pipeline_root and metadata_path should come from layout.
      layout: the output folder.
      input_path: the data path as the user gave it, for the summary.
      say: where progress lines go.

    Returns:
      The status, exit code, a one-line message and the summary written (to DIR/summary.json and, kept for
      `fraud-pipeline report --run ID`, to DIR/runs/ID/summary.json).
    """
    done = execute(create_pipeline(config), config, layout, say)
    with logs_to_file(layout):
        return _record(done, config, layout, input_path)


def _record(done: Executed, config: PipelineConfig, layout: OutputLayout, input_path: str) -> RunResult:
    """Reads the finished run's results and writes its summary.json (see run)."""
    nodes = done.nodes
    found = summary_lib.anomalies(nodes["ExampleValidator"]) if "ExampleValidator" in nodes else []
    evaluated = (
        summary_lib.evaluation_summary(nodes["Evaluator"], config.gates) if _ok(nodes.get("Evaluator")) else None
    )
    pushed = summary_lib.pushed_model(nodes["Pusher"]) if _ok(nodes.get("Pusher")) else None
    status, code, message = _verdict(done.error, nodes, found, evaluated, pushed)
    trainer = nodes["Trainer"] if _ok(nodes.get("Trainer")) else None

    result = {
        **run_record(done, config, input_path),
        "status": status,
        "exit_code": code,
        "message": message,
        "anomalies": found,
        "trainer": summary_lib.training(trainer) if trainer else None,
        "operating_threshold": _operating_threshold(trainer, evaluated),
        "evaluation": evaluated,
        "blessed": bool(evaluated and evaluated["blessed"]),
        "not_blessed_reasons": evaluated["not_blessed_reasons"] if evaluated else [],
        "baseline": _baseline_note(evaluated),
        "pushed_model": pushed,
        "serving_dir": config.serving_dir,
        "artifacts": _artifacts(nodes),
        "output_dir": layout.root,
        "pipeline_root": layout.pipeline_root,
        "metadata": layout.metadata_path,
        "log": layout.log_path,
    }
    summary_lib.write(layout.summary_path, result)
    if done.run_id is not None:
        run_summary = layout.run_summary_path(done.run_id)
        os.makedirs(os.path.dirname(run_summary), exist_ok=True)
        summary_lib.write(run_summary, result)
    return RunResult(status=status, exit_code=code, message=message, summary=result)
