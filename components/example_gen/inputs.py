"""What a CsvExampleGen run reads: its custom config, the files or the window of spans, and what it records of them."""

import dataclasses
import glob
import json
from typing import Any

from google.protobuf import json_format, struct_pb2
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

import contract
from components.lib import csv_contract, serving, spans
from components.lib.rejection import DataRejectedError
from datasets import spec as dataset_spec


def custom_fields(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The fields packed by component.split_custom_config (split, span_pattern, window, code_version)."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {}
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    return json_format.MessageToDict(struct)


def split_scheme(exec_properties: dict[str, Any]) -> str:
    return custom_fields(exec_properties).get("split") or "random"


def dataset(exec_properties: dict[str, Any]) -> dataset_spec.DatasetSpec:
    """The dataset spec the component was given (DatasetSpec.to_json), or the default one."""
    text = custom_fields(exec_properties).get("dataset")
    return dataset_spec.from_json(text) if text else contract.DEFAULT_DATASET


@dataclasses.dataclass(frozen=True)
class SpanSelection:
    """What a run of spanned input reads: the window's spans (oldest first) and the span before the newest."""

    pattern: str
    window: list[spans.Span]
    previous: spans.Span | None
    # Every span found, oldest first (the older ones are the history of the window's rows, context_files).
    found: tuple[spans.Span, ...] = ()

    @property
    def newest(self) -> spans.Span:
        return self.window[-1]

    def files(self) -> list[str]:
        return [f for span in self.window for f in span.files]


# Where the executor keeps the run's span selection among the exec properties (as TFX keeps its Beam args there).
_SELECTION_KEY = "_span_selection"


def select_spans(exec_properties: dict[str, Any]) -> SpanSelection | None:
    """The spans this run reads (None for input without spans), found once and kept in exec_properties.

    Raises:
      DataRejectedError: no file matches the span pattern, or the pattern cannot be used.
    """
    if _SELECTION_KEY in exec_properties:
        return exec_properties[_SELECTION_KEY]
    fields = custom_fields(exec_properties)
    pattern = fields.get("span_pattern") or ""
    selection = None
    if pattern:
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        try:
            found = spans.find(base, pattern, fileio.glob(f"{glob.escape(base)}/{spans.glob_of(pattern)}"))
        except spans.SpanPatternError as e:
            raise DataRejectedError(f"{base}: {e}") from e
        if not found:
            raise DataRejectedError(f"no span matches {base}/{pattern}")
        window = spans.newest(found, int(fields.get("window") or 0))
        selection = SpanSelection(pattern, window, found[-2] if len(found) > 1 else None, tuple(found))
    exec_properties[_SELECTION_KEY] = selection
    return selection


def input_files(exec_properties: dict[str, Any], split_pattern: str) -> list[str]:
    """The CSV files a run reads: the window's spans for spanned input, else what the input pattern matches."""
    selection = select_spans(exec_properties)
    if selection is not None:
        return selection.files()
    # The folder is a path, not a pattern (a folder named 'data[1]' is that folder); the split pattern is one.
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
    files = sorted(fileio.glob(glob.escape(base) + "/" + split_pattern))
    if not files:
        raise DataRejectedError(f"no CSV file matches {base}/{split_pattern}")
    return files


def _first_time(path: str, spec: dataset_spec.DatasetSpec) -> float | None:
    """The event time of a file's first row (spans are in time order, so it is where the span starts)."""
    header = csv_contract.read_header(path)
    if spec.time not in header:
        return None
    for _, cells in csv_contract.careful_rows(path):
        index = header.index(spec.time)
        return spec.time_of(cells[index]) if index < len(cells) else None
    return None


def context_files(exec_properties: dict[str, Any], files: list[str], spec: dataset_spec.DatasetSpec) -> list[str]:
    """The files of the spans older than `files` that hold the history of their rows: with a history section
    (datasets.spec.History) on spanned input, the rows of the spans before the oldest one read, back to the span
    that starts at least the history's reach (the longest window plus the delay) before it; [] otherwise. A run
    of spans thus gives each row the windows a continuous history would."""
    selection = select_spans(exec_properties)
    if not spec.history or selection is None:
        return []
    wanted = set(files)
    first = next((i for i, span in enumerate(selection.found) if wanted & set(span.files)), None)
    if not first:
        return []
    start = _first_time(selection.found[first].files[0], spec)
    out = []
    for span in reversed(selection.found[:first]):
        out = [*span.files, *out]
        begins = _first_time(span.files[0], spec)
        if start is None or begins is None or begins <= start - spec.history_span:
            break
    return out


def record_data(artifact, exec_properties: dict[str, Any], pattern: str) -> None:
    """Puts what the run trained on on its Examples artifact: the files read (relative to the input base, as JSON)
    and their content fingerprint (components.lib.serving.data_fingerprint), which makes the models' training
    identity."""
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = input_files(exec_properties, pattern)
    names = [serving.relative(f, base) for f in files]
    artifact.set_string_custom_property(contract.DATA_FILES_PROPERTY, json.dumps(names))
    artifact.set_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY, serving.data_fingerprint(files, base))


def record_spans(artifact, selection: SpanSelection) -> None:
    """Puts the spans a run read on its Examples artifact: TFX's span property (the newest span's number) and, as
    custom properties, the pattern, the window's labels (JSON) and the previous span's label ('' on the first)."""
    artifact.span = selection.newest.number
    artifact.set_string_custom_property("span_pattern", selection.pattern)
    artifact.set_string_custom_property("spans", json.dumps([s.label for s in selection.window]))
    artifact.set_string_custom_property("previous_span", selection.previous.label if selection.previous else "")
