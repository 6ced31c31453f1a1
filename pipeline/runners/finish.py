"""The one step after a run, whichever runner ran it (the local runner, a rehearsal of a compiled spec, a replay):
summary.json, the run's report and the output folder's history page.

A runner returns what ran (results.summary.Executed); `finish` reads it back into the run's verdict and summary and
writes them; `write_pages` writes the pages. A page that cannot be written is told apart (Pages.errors) without
changing the run's verdict.
"""

import dataclasses
import os

from contract import OutputLayout
from pipeline.definition.config import PipelineConfig
from pipeline.results import summary as summary_lib
from pipeline.results.summary import Executed
from pipeline.results.verdict import Verdict


@dataclasses.dataclass
class Pages:
    """The pages written after a run (None where not written) and why any could not be."""

    report: str | None = None
    history: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Finished:
    """A finished run: its verdict, the summary written and the pages."""

    verdict: Verdict
    record: dict
    pages: Pages

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def message(self) -> str:
        return self.verdict.message


def report_page(record: dict, folder: str, pages: Pages) -> None:
    """Writes a run's report into folder (pages.report), or says in pages.errors why it could not."""
    from pipeline.report import run_page

    try:
        pages.report = run_page.build(record, folder)
    except Exception as e:  # noqa: BLE001 - the run's result stands; the report is told apart.
        pages.errors.append(f"the report could not be written: {type(e).__name__}: {e}")


def build_history_page(layout: OutputLayout) -> str:
    """Writes the output folder's history page again (each run's report links to it); returns its path."""
    from pipeline.report import history_page as page
    from pipeline.results import history as history_lib

    return page.build(history_lib.history(layout), os.path.join(layout.root, page.HISTORY_DIR))


def history_page(layout: OutputLayout, pages: Pages) -> None:
    """build_history_page into pages.history, or says in pages.errors why it could not."""
    try:
        pages.history = build_history_page(layout)
    except Exception as e:  # noqa: BLE001 - the run's result stands; the page is told apart.
        pages.errors.append(f"the history page could not be written: {type(e).__name__}: {e}")


def write_pages(record: dict, layout: OutputLayout) -> Pages:
    """The run's report (DIR/runs/ID/report) and the history page, for a run that recorded a run id."""
    pages = Pages()
    if record.get("run_id") is not None:
        report_page(record, layout.report_dir(record["run_id"]), pages)
        history_page(layout, pages)
    return pages


def finish(
    done: Executed,
    config: PipelineConfig,
    layout: OutputLayout,
    input_path: str,
    extra: dict | None = None,
    pages: bool = True,
) -> Finished:
    """Reads a run back and writes summary.json (DIR/ and, kept for `report --run ID`, DIR/runs/ID/), then its pages.

    Args:
      done: what the runner ran.
      config: the pipeline config the run had.
      layout: the output folder.
      input_path: the data path as the user gave it, for the summary.
      extra: more fields for the summary (a rehearsal's tasks).
      pages: whether to write the report and history page (not with --no-report, nor for a failed rehearsal task).
    """
    verdict, record = summary_lib.run_summary(done, config, layout, input_path)
    record.update(extra or {})
    summary_lib.write(layout.summary_path, record)
    if done.run_id is not None:
        summary_lib.write(layout.run_summary_path(done.run_id), record)
    return Finished(verdict, record, write_pages(record, layout) if pages else Pages())
