"""The record of a scoring batch: OUTPUT/scoring/<batch>/, written by every `predict`, read by `outcomes`.

    batch.json        the model (version, path, threshold, training identity), the input files, rows scored and
                      rejected, the Time range, the key column, and the serving skew found (pipeline/scoring/skew.py)
    scores.parquet    one row per score: file, line, key, Time, Amount, Class (when the input had it),
                      probability, decision, model_version; written a batch at a time (Arrow row groups)
    statistics.pb     TFDV's statistics of the rows scored, or of a uniform sample of them (pipeline/scoring/skew.py)

The folder is written as BATCH.partial and renamed when complete, so a reader never sees half a record.
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
_PARTIAL = ".partial"
_TIME = contract.RAW_FLOAT_FEATURES.index(contract.TIME)
_AMOUNT = contract.RAW_FLOAT_FEATURES.index(contract.AMOUNT)


def scoring_root(output: str) -> Path:
    return Path(output) / SCORING_DIR


def new_batch_id() -> str:
    """Sortable by time: the UTC second, then a short random part."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class ScoresWriter:
    """Writes one scoring batch's record, a batch of rows at a time; close() publishes it."""

    def __init__(self, output: str, labelled: bool, key: str | None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.batch_id = new_batch_id()
        self.final = scoring_root(output) / self.batch_id
        self.folder = self.final.with_name(self.batch_id + _PARTIAL)
        self.folder.mkdir(parents=True)
        fields = [("file", pa.string()), ("line", pa.int64())]
        fields += [("key", pa.string())] if key else []
        fields += [(contract.TIME, pa.float64()), (contract.AMOUNT, pa.float64())]
        fields += [(contract.LABEL, pa.int8())] if labelled else []
        fields += [("probability", pa.float32()), ("decision", pa.int8()), ("model_version", pa.string())]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(str(self.folder / SCORES_FILE), self._schema)
        self._labelled, self._key = labelled, key
        self.rows = 0
        self.time_range = [None, None]

    def add(self, batch, probabilities: np.ndarray, decisions: np.ndarray, version: str) -> None:
        pa = self._pa
        # The default dataset's rows hold every feature; another dataset's batch holds its time and amount alone.
        at_time, at_amount = (_TIME, _AMOUNT) if batch.features is None else (0, 1)
        times = batch.values[:, at_time].astype(np.float64)
        columns = [pa.array(batch.files, pa.string()), pa.array(batch.lines, pa.int64())]
        columns += [pa.array(batch.keys, pa.string())] if self._key else []
        columns += [pa.array(times), pa.array(batch.values[:, at_amount].astype(np.float64))]
        if self._labelled:
            labels = batch.labels or [""] * len(batch)
            columns.append(pa.array([int(v) if v != "" else None for v in labels], pa.int8()))
        columns += [
            pa.array(probabilities.astype(np.float32)),
            pa.array(decisions.astype(np.int8)),
            pa.repeat(pa.scalar(version, pa.string()), len(batch)),
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))
        self.rows += len(batch)
        low, high = float(times.min()), float(times.max())
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
