"""The record of a scoring batch: OUTPUT/scoring/<batch>/, written by every `predict`, read by `outcomes`.

    batch.json        the model (version, path, threshold, training identity), the input files, rows scored and
                      rejected, the Time range, the key column, and the serving skew found (pipeline/scoring/skew.py)
    scores.parquet    one row per score: file, line, key, Time, Amount, Class (when the input had it),
                      probability, decision, model_version; written a batch at a time (Arrow row groups)
    statistics.pb     TFDV's statistics of the rows scored, or of a uniform sample of them (pipeline/scoring/skew.py)
    features.parquet  the model's raw features of each row as received (a window of online traffic, whose skew
                      is measured after the window closes, by `fraud-pipeline serve`; pipeline/scoring/skew.py)

The folder is written as BATCH.partial and renamed when complete, so a reader never sees half a record. The model
server records its traffic in windows (pipeline/server/online.py), BATCH-online, each a batch like `predict`'s.
"""

import datetime
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

import contract

SCORING_DIR = "scoring"
BATCH_FILE = "batch.json"
SCORES_FILE = "scores.parquet"
STATISTICS_FILE = "statistics.pb"
FEATURES_FILE = "features.parquet"
ONLINE_SUFFIX = "-online"
# The scores file's column of each row's card (a record of a spec with card precision).
CARD = "card"
_PARTIAL = ".partial"
_TIME = contract.RAW_FLOAT_FEATURES.index(contract.TIME)
_AMOUNT = contract.RAW_FLOAT_FEATURES.index(contract.AMOUNT)


def cell(value):
    """A value of a request or a batch as Python's (numpy's scalars unwrapped, bytes decoded); None for a missing
    one (None, NaN or "")."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return None
    return value


def _text(value) -> str | None:
    """A card id as text (None where it is missing)."""
    value = cell(value)
    return None if value is None else str(value)


def scoring_root(output: str) -> Path:
    return Path(output) / SCORING_DIR


def new_batch_id() -> str:
    """Sortable by time: the UTC time to the microsecond, then a short random part. (To the second, two batches of
    one second, such as the model server's windows around a version swap, sorted by their random parts.)"""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


class ScoresWriter:
    """Writes one scoring batch's record, a batch of rows at a time; close() publishes it."""

    def __init__(self, output: str, labelled: bool, key: str | None, suffix: str = "", card: str = ""):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.batch_id = new_batch_id() + suffix
        self.final = scoring_root(output) / self.batch_id
        self.folder = self.final.with_name(self.batch_id + _PARTIAL)
        self.folder.mkdir(parents=True)
        fields = [("file", pa.string()), ("line", pa.int64())]
        fields += [("key", pa.string())] if key else []
        fields += [(contract.TIME, pa.float64()), (contract.AMOUNT, pa.float64())]
        fields += [(contract.LABEL, pa.int8())] if labelled else []
        fields += [("probability", pa.float32()), ("decision", pa.int8()), ("model_version", pa.string())]
        # The card each row is of (the spec's card precision entity), for outcomes' card precision@k.
        fields += [(CARD, pa.string())] if card else []
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(str(self.folder / SCORES_FILE), self._schema)
        self._labelled, self._key, self.card = labelled, key, card
        self.rows = 0
        self.time_range = [None, None]

    def add(self, batch, probabilities: np.ndarray, decisions: np.ndarray, version: str) -> None:
        """A batch of rows as `predict` read them (pipeline/scoring/rows.py) with their scores."""
        # The default dataset's rows hold every feature; another dataset's batch holds its time and amount alone.
        at_time, at_amount = (_TIME, _AMOUNT) if batch.features is None else (0, 1)
        labels = None
        if self._labelled:
            labels = [int(v) if v != "" else None for v in (batch.labels or [""] * len(batch))]
        cards = [row.get(self.card) for row in batch.features] if self.card and batch.features is not None else None
        self.add_columns(
            batch.files,
            batch.lines,
            batch.keys,
            batch.values[:, at_time].astype(np.float64),
            batch.values[:, at_amount].astype(np.float64),
            labels,
            probabilities,
            decisions,
            version,
            cards,
        )

    def add_columns(
        self, files, lines, keys, times, amounts, labels, probabilities, decisions, version, cards=None
    ) -> None:
        """Rows by column: file names, line numbers, keys (when recorded with one), event times and amounts (float64),
        labels (0, 1 or None; when labelled), probabilities, decisions, the version that scored them, and the cards
        (when recorded with them; None where a row has none)."""
        pa = self._pa
        times = np.asarray(times, np.float64)
        columns = [pa.array(files, pa.string()), pa.array(lines, pa.int64())]
        columns += [pa.array(keys, pa.string())] if self._key else []
        columns += [pa.array(times), pa.array(np.asarray(amounts, np.float64))]
        if self._labelled:
            columns.append(pa.array(labels, pa.int8()))
        columns += [
            pa.array(np.asarray(probabilities).astype(np.float32)),
            pa.array(np.asarray(decisions).astype(np.int8)),
            pa.repeat(pa.scalar(version, pa.string()), len(times)),
        ]
        if self.card:
            cards = [None] * len(times) if cards is None else [_text(c) for c in cards]
            columns.append(pa.array(cards, pa.string()))
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))
        self.rows += len(times)
        known = times[~np.isnan(times)]
        if not len(known):
            return
        low, high = float(known.min()), float(known.max())
        self.time_range = [
            low if self.time_range[0] is None else min(self.time_range[0], low),
            high if self.time_range[1] is None else max(self.time_range[1], high),
        ]

    def close(self, record: dict, statistics=None) -> Path:
        """Writes batch.json (and the statistics) and makes the record visible at once."""
        self._writer.close()
        if statistics is not None:
            (self.folder / STATISTICS_FILE).write_bytes(statistics.SerializeToString())
        record = {**record, "batch_id": self.batch_id, "rows": self.rows, "time_range": self.time_range}
        (self.folder / BATCH_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(self.folder, self.final)
        return self.final

    def abandon(self) -> None:
        """A batch that failed leaves no record."""
        self._writer.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def online_batches(output: str) -> list[Path]:
    """The model server's complete windows under OUTPUT/scoring, oldest first."""
    return [p for p in batches(output) if p.name.endswith(ONLINE_SUFFIX)]


def write_batch(folder: Path, record: dict) -> None:
    """Replaces a complete record's batch.json at once (what the skew measured after a window closed adds)."""
    partial = folder / (BATCH_FILE + _PARTIAL)
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(partial, folder / BATCH_FILE)


def batches(output: str) -> list[Path]:
    """The complete records under OUTPUT/scoring, oldest first."""
    root = scoring_root(output)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.endswith(_PARTIAL) and (p / BATCH_FILE).is_file()
    )


def read_batch(folder: Path) -> dict:
    return json.loads((folder / BATCH_FILE).read_text())
