"""Runs the pipeline on the local Beam runner (LocalDagRunner, SQLite ML Metadata) and writes summary.json."""

import contextlib
import datetime
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Callable

from tfx.dsl.compiler import constants as compiler_constants
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.pipeline import Pipeline
from tfx.orchestration.portable import runtime_parameter_utils

from compat import tfx as tfx_compat
from components.lib import serving
from contract import OutputLayout
from datasets import spec as dataset_spec
from pipeline.definition import beam_workers, metadata
from pipeline.definition import config as cfg
from pipeline.definition import status as st
from pipeline.definition.config import PipelineConfig
from pipeline.definition.pipeline import create_compare_pipeline, create_pipeline
from pipeline.report import compare_page
from pipeline.results import comparison, summary
from pipeline.results.metadata import mark_run, run_nodes
from pipeline.results.summary import Executed
from pipeline.runners.finish import Finished, Pages, finish


class _Progress:
    """Progress lines and per-component seconds from LocalDagRunner's component launches (compat/tfx.py)."""

    def __init__(self, say: Callable[[str], None]):
        self._say = say
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        # The process's peak resident memory when each component finished (a high-water mark: it only rises, so
        # the component where it rises is the one that needed it). Beam's in-process runners run here.
        self.peak_rss_mb: dict[str, int] = {}

    def started(self, node: str) -> None:
        self._started[node] = time.monotonic()
        self._say(f"running {node} ...")

    def finished(self, node: str) -> None:
        self.seconds[node] = round(time.monotonic() - self._started.get(node, time.monotonic()), 1)
        self.peak_rss_mb[node] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kB on Linux
        self._say(f"finished {node} ({self.seconds[node]} s)")


class _NamedRunner(LocalDagRunner):
    """LocalDagRunner with the run id given, not made inside it, so the run can read back its own executions."""

    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id

    def run_with_ir(self, pipeline, run_options=None):
        # LocalDagRunner substitutes its own id the same way; once set here, its substitution finds nothing left.
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: self.run_id}
        )
        return super().run_with_ir(pipeline, run_options)


def _say(line: str) -> None:
    print(f"[fraud-pipeline] {line}", file=sys.stderr, flush=True)


def _route_logs(log_path: str) -> Callable[[], None]:
    """Sends all library logs to the run's log file; returns an undo."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    file_handler = logging.FileHandler(log_path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [file_handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # TensorFlow's logger writes to stderr itself; send it to the file only.
    tf_logger = logging.getLogger("tensorflow")
    tf_saved = (tf_logger.handlers[:], tf_logger.propagate)
    tf_logger.handlers, tf_logger.propagate = [], True

    def undo():
        tf_logger.handlers, tf_logger.propagate = tf_saved
        root.handlers, level = saved
        root.setLevel(level)
        logging.captureWarnings(False)
        file_handler.close()

    return undo


@contextlib.contextmanager
def logs_to_file(layout: OutputLayout):
    """Library logs (TensorFlow's deprecation notices among them) go to the run's log file meanwhile."""
    undo = _route_logs(layout.log_path)
    try:
        yield
    finally:
        undo()


def execute(
    pipeline: Pipeline, config: PipelineConfig, layout: OutputLayout, say: Callable[[str], None] = _say
) -> Executed:
    """Runs a pipeline with LocalDagRunner, with progress lines on stderr and library logs in the run's log."""
    os.makedirs(layout.root, exist_ok=True)
    beam_workers.no_tfx_package()
    progress = _Progress(say)
    undo_logs = _route_logs(layout.log_path)
    started = datetime.datetime.now(datetime.timezone.utc)
    # The same form as LocalDagRunner's own ids (local time, ISO 8601 with microseconds); in a store shared by
    # several machines, the machine's name after it, so that two runs started at the same moment stay two runs.
    run_id = datetime.datetime.now().isoformat() + metadata.run_suffix(config.metadata_path)
    error: BaseException | None = None
    try:
        with tfx_compat.component_launches(progress.started, progress.finished):
            _NamedRunner(run_id).run(pipeline)
    except Exception as e:  # noqa: BLE001 - every failure is classified and reported by the caller.
        error = e
        logging.exception("pipeline run failed")
    finally:
        undo_logs()
    nodes = {}
    if metadata.exists(config.metadata_path):
        try:
            nodes = run_nodes(config.metadata_path, config.pipeline_name, run_id)
        except Exception as e:  # noqa: BLE001 - a shared server gone mid-run: the run's error says so (summary)
            if not (metadata.is_server(config.metadata_path) and error is not None):
                raise
            logging.warning("the run's executions could not be read back: %s", e)
    if nodes:
        # Where it ran, on its run in the store (a shared store's history lists the runs of every folder).
        mark_run(config.metadata_path, run_id, layout.root, socket.gethostname())
    return Executed(
        error=error,
        nodes=nodes,
        run_id=run_id if nodes else None,
        seconds=progress.seconds,
        started=started,
        peak_rss_mb=progress.peak_rss_mb,
    )


def run(
    config: PipelineConfig,
    layout: OutputLayout,
    input_path: str,
    say: Callable[[str], None] = _say,
    pages: bool = True,
) -> Finished:
    """Runs the pipeline locally, then finishes it (runners/finish.py): summary.json, the report, the history page.

    Args:
      config: the pipeline config; its pipeline_root and metadata_path should come from layout.
      layout: the output folder.
      input_path: the data path as the user gave it, for the summary.
      say: where progress lines go.
      pages: whether to write the report and the history page.

    Returns:
      The verdict, the summary written (to DIR/summary.json and, kept for `fraud-pipeline report --run ID`, to
      DIR/runs/ID/summary.json) and the pages.
    """
    changed = dataset_changes(config, layout)
    if changed:
        say(
            f"the dataset spec differs from the one of serving version {changed['serving_version']} "
            f"({changed['serving_dataset']}): {'; '.join(changed['changes'])}; it is no baseline unless it reads "
            "this run's columns"
        )
    done = execute(create_pipeline(config), config, layout, say)
    with logs_to_file(layout):
        return finish(
            done, config, layout, input_path, extra={"dataset_changes": changed} if changed else None, pages=pages
        )


def dataset_changes(config: PipelineConfig, layout: OutputLayout) -> dict | None:
    """How this run's dataset spec differs from the one the serving version was trained by (None when it does not,
    or nothing serves): said before the run, kept in the summary and the report."""
    now = serving.serving_now(layout.serving_dir)
    if now is None:
        return None
    theirs = serving.dataset_of_model(now[1])
    found = dataset_spec.changes(theirs, config.dataset)
    if not found:
        return None
    return {"serving_version": str(now[0]), "serving_dataset": theirs.name, "changes": found}


def compare(
    config: PipelineConfig,
    layout: OutputLayout,
    input_path: str,
    strategies: tuple[str, ...],
    say: Callable[[str], None] = _say,
) -> Finished:
    """Runs the comparison pipeline locally; writes compare.json and, when every strategy finished, the page."""
    done = execute(create_compare_pipeline(config, strategies), config, layout, say)
    with logs_to_file(layout):
        verdict, record = comparison.compare_result(done, config, layout, input_path, strategies)
        if verdict.exit_code == st.EXIT_OK:
            examples = done.nodes[cfg.EXAMPLE_GEN].output_uri("examples")
            record["html"] = compare_page.build(record, examples, layout.compare_dir)
    summary.write(layout.compare_json_path, record)
    return Finished(verdict, record, Pages())
