"""Shared test helpers and session-scoped pipeline runs (a TFX run costs tens of seconds, so tests share them)."""

import csv
import dataclasses
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# TFX 1.16 and TF Transform use Keras 2 (tf_keras); set before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
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


def run_cli(output: Path, *args: str) -> CliRun:
    """Runs `fraud-pipeline run --output OUTPUT ARGS...` in a subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [str(CLI), "run", "--output", str(output), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    summary_path = output / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, output, summary, snapshot(output / "serving"))


def snapshot(folder: Path) -> dict:
    """Relative path -> (size, mtime_ns) of every file below folder; {} when it does not exist."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


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


@pytest.fixture(scope="session")
def time_run(tmp_path_factory) -> CliRun:
    """The fixture run end to end with the time split (the default)."""
    result = run_cli(tmp_path_factory.mktemp("time_run"), "--data", str(FIXTURE))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def lifecycle(tmp_path_factory) -> dict[str, CliRun]:
    """Runs into one output folder, in order, as a team would over time:

    first: the class_weight strategy on a fresh folder (no blessed model yet);
    unchanged: the same again (everything should come from the cache);
    oversample: another strategy (Trainer and what follows re-run);
    impossible: gates no model can meet (not blessed, nothing pushed), and a cost-based operating threshold;
    worse: a model trained for one step, with the value floors at 0 (only the baseline comparison can fail).
    """
    output = tmp_path_factory.mktemp("lifecycle")
    data = ("--data", str(FIXTURE))
    steps = {
        "first": ("--strategy", "class_weight"),
        "unchanged": ("--strategy", "class_weight"),
        "oversample": ("--strategy", "oversample"),
        "impossible": (
            "--strategy",
            "oversample",
            "--min-pr-auc",
            "1.0",
            "--min-recall-at-precision",
            "1.0",
            "--fn-cost",
            "10",
            "--fp-cost",
            "1",
        ),
        "worse": (
            "--strategy",
            "oversample",
            "--max-epochs",
            "1",
            "--min-pr-auc",
            "0",
            "--min-recall-at-precision",
            "0",
        ),
    }
    return {name: run_cli(output, *data, *args) for name, args in steps.items()}


@pytest.fixture(scope="session")
def random_run(tmp_path_factory) -> CliRun:
    """The fixture run end to end with the random (hash) split."""
    result = run_cli(tmp_path_factory.mktemp("random_run"), "--data", str(FIXTURE), "--split", "random")
    assert result.returncode == 0, result.stderr[-3000:]
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
        finally:
            browser.close()
    return BrowserView(console, errors, failed, screenshot)


def assert_not_blank(png: Path) -> None:
    """A screenshot with real content: many non-white pixels and a spread of tones."""
    from PIL import Image, ImageStat

    image = Image.open(png).convert("L")
    pixels = image.getdata()
    inked = sum(1 for v in pixels if v < 200) / len(pixels)
    assert inked > 0.02, f"only {inked:.1%} of {png} is not white"
    assert ImageStat.Stat(image).stddev[0] > 20


@pytest.fixture(scope="session")
def compare_run(tmp_path_factory) -> dict:
    """`fraud-pipeline compare` on the fixture: its process result, output folder and compare.json."""
    output = tmp_path_factory.mktemp("compare")
    proc = subprocess.run(
        [str(CLI), "compare", "--data", str(FIXTURE), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"proc": proc, "output": output, "result": json.loads((output / "compare.json").read_text())}
