"""What --data means (a file, a flat folder of CSV files, or spans), and the files a local run will read."""

import dataclasses
import glob
from pathlib import Path

from components.lib import serving, spans
from pipeline.cli.flags import UsageError
from pipeline.definition.config import PipelineConfig

CSV_GLOB = "*.csv*"


GLOB_CHARACTERS = frozenset("*?[")


def split_data_path(path: str) -> tuple[str, str]:
    """Turns --data into (folder, file glob): a file is matched by its name alone (escaped: a name such as
    'train[1].csv' is that file, not a pattern matching 'train1.csv'), a folder by '*.csv*'.

    A remote URI (gs://, s3://, ...) cannot be looked at here: a folder ends with '/', a file's name holds '.csv',
    and a last part with *, ? or [ is a pattern the user wrote; anything else is refused.

    Raises:
      UsageError: a local path that does not exist, a folder without CSV files, or a remote URI whose last part is
        neither a folder, a CSV file name nor a pattern.
    """
    if "://" in path:
        if path.endswith("/"):
            return path.rstrip("/"), CSV_GLOB
        folder, name = path.rsplit("/", 1)
        if not GLOB_CHARACTERS & set(name) and ".csv" not in name:
            raise UsageError(
                f"--data {path}: '{name}' is neither a CSV file name (.csv, .csv.gz) nor a pattern; for the folder "
                f"write {path}/ (its *.csv* files), for some of its files a pattern such as {path}/*.csv"
            )
        return folder, name
    local = Path(path).expanduser().resolve()
    if local.is_dir():
        if not any(local.glob(CSV_GLOB)):
            raise UsageError(f"--data {path}: the folder holds no file matching {CSV_GLOB}")
        return str(local), CSV_GLOB
    if not local.is_file():
        raise UsageError(f"--data {path}: no such file or folder")
    return str(local.parent), glob.escape(local.name)


@dataclasses.dataclass(frozen=True)
class DataInput:
    """Where --data points: a folder (root), the glob of its files, and the span pattern of input in spans."""

    root: str
    pattern: str
    span_pattern: str = ""


def _placeholder_split(path: str) -> tuple[str, str]:
    """'ROOT/span-{SPAN}/*.csv' -> ('ROOT', 'span-{SPAN}/*.csv'): the folders before the first placeholder."""
    steps = path.split("/")
    first = next(i for i, step in enumerate(steps) if spans.has_placeholder(step))
    return "/".join(steps[:first]), "/".join(steps[first:])


def data_input(path: str) -> DataInput:
    """What --data means: a file, a flat folder of CSV files, or spans.

    Spans are given by a pattern with TFX's placeholders ({SPAN}, or {YYYY}, {MM} and {DD}), e.g.
    DATA/span-{SPAN}/*.csv.gz, or found in a local folder whose every CSV file follows one of spans.DETECTED_LAYOUTS
    (DATA/span-0001/*.csv.gz, DATA/span-0001.csv.gz, DATA/2013-09-01/*.csv, DATA/2013-09-01.csv.gz).

    Raises:
      UsageError: a local path that does not exist, a folder without CSV files, or a pattern that cannot be used.
    """
    if spans.has_placeholder(path):
        root, pattern = _placeholder_split(path)
        try:
            spans.check(pattern)
        except spans.SpanPatternError as e:
            raise UsageError(f"--data {e}") from e
        if "://" not in path:
            local = Path(root).expanduser().resolve()
            if not local.is_dir():
                raise UsageError(f"--data {path}: no such folder {root}")
            root = str(local)
        return DataInput(root, spans.glob_of(pattern), pattern)
    if "://" not in path and Path(path).expanduser().is_dir():
        local = Path(path).expanduser().resolve()
        # Spans are files in the folder or in its subfolders, never deeper (spans.DETECTED_LAYOUTS).
        names = [str(p.relative_to(local)) for p in (*local.glob("*"), *local.glob("*/*")) if p.is_file()]
        layout = spans.detect(names)
        if layout is not None:
            return DataInput(str(local), spans.glob_of(layout), layout)
    return DataInput(*split_data_path(path))


def data_files(data: DataInput, window: int) -> list[str]:
    """The local files a run on this data reads, as CsvExampleGen will find them (the window's spans, or the glob)."""
    if data.span_pattern:
        pattern = f"{glob.escape(data.root)}/{spans.glob_of(data.span_pattern)}"
        found = spans.find(data.root, data.span_pattern, glob.glob(pattern))
        return [f for span in spans.newest(found, window) for f in span.files]
    return sorted(glob.glob(f"{glob.escape(data.root)}/{data.pattern}"))


def baseline_key(data: DataInput, config: PipelineConfig) -> str:
    """ServingBaseline's cache key for a local run (components.lib.serving.baseline_key): the baseline the run will
    compare with, from the serving folder and the identity of the model this data and config train."""
    identity = None
    files = data_files(data, config.window) if "://" not in data.root else []
    if files:
        identity = serving.training_identity(serving.data_fingerprint(files, data.root), config.training_config())
    return serving.baseline_key(config.serving_dir, identity)
