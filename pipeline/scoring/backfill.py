"""Seeds the online store from labelled files: the history a freshly pushed model's first requests need.

A store that starts empty would give the first rows scored after a push windows with no past in them, unlike what
training gave the same rows. `fraud-pipeline run` therefore writes the newest rows of its input (the longest window
plus the delay before its newest row: all a later row's windows can reach) into the store after a push, with their
labels; `fraud-pipeline backfill` does the same from any labelled files (a team's store, a store moved to
PostgreSQL, a run on Kubeflow). Writing a row the store has is a no-op; a label is written again.
"""

import dataclasses

from components.example_gen.records import fast_times
from components.lib.csv_contract import FastReaderRefusedError
from components.lib.rejection import DataRejectedError
from datasets.spec import DatasetSpec
from pipeline.online_store.store import OnlineStore
from pipeline.scoring.rows import Rejects, input_files, spec_batches, spec_headers


@dataclasses.dataclass
class Backfilled:
    rows: int
    labels: int
    since: float | None
    where: str


def _newest(files: list[str], spec: DatasetSpec, checked: dict) -> float | None:
    """The newest event time of the files: their time column alone, read by Arrow as ExampleGen reads it (every row
    read by the careful reader where Arrow refuses a file)."""
    newest = None
    for file in files:
        try:
            times = list(fast_times(file, checked[file], spec))
        except FastReaderRefusedError:
            times = [
                t for batch in spec_batches([file], Rejects(None), spec, checked=checked) for t in batch.values[:, 0]
            ]
        if times:
            newest = max(times) if newest is None else max(newest, max(times))
    return None if newest is None else float(newest)


def backfill(data: str, spec: DatasetSpec, store: OnlineStore) -> Backfilled:
    """Writes the rows of `data` (a CSV file or folder, by the spec) within the history's reach of its newest row into
    the store, and their labels.

    Raises:
      DataRejectedError: a header or row that breaks the spec (named by file and line).
    """
    if not spec.history:
        raise ValueError(f"the dataset spec {spec.name!r} has no history section: nothing to backfill")
    files = input_files(data)
    key = spec.key or None
    checked = spec_headers(files, spec, key)
    newest = _newest(files, spec, checked)
    if newest is None:
        raise DataRejectedError(f"{data}: no row to backfill the online store with")
    since = newest - spec.history_span
    rows = labels = 0
    for batch in spec_batches(files, Rejects(None), spec, checked=checked, key=key):
        kept = [i for i in range(len(batch)) if batch.values[i, 0] >= since]
        if not kept:
            continue
        features = [batch.features[i] for i in kept]
        store.add(features)
        rows += len(kept)
        if batch.labels is not None and key:
            known = {batch.keys[i]: int(batch.labels[i]) for i in kept if batch.labels[i] in ("0", "1")}
            labels += store.label(known)
    return Backfilled(rows, labels, since, store.where)
