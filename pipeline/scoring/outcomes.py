"""Outcomes: the labels that arrive after scoring (chargebacks, confirmed frauds) joined with the recorded scores.

The scores are every complete record under OUTPUT/scoring (pipeline/scoring/record.py). Labels come as CSV, plain or
gzip, a file or a folder of them, with a `Class` column (0 or 1, as the contract reads it) and either the key column
the scores were recorded with (`predict --key`) or, without one, the scored files themselves: a row's label is then
joined by the scored file's name and line. Nothing is dropped silently: labels for rows never scored, scored rows
that no label reached, keys scored more than once and labels that contradict each other are counted and named.

Per day of `Time` and per model version: rows, labelled rows, alerts (decision 1), realized precision and recall at
the shipped threshold, PR-AUC (average precision, scikit-learn's definition), precision at the alert budget (the
day's N highest scores, N alerts a day), the fraud amount caught and missed, and for a spec with an entity, card
precision@k (components/lib/card_precision.py; the scores record each row's card).
"""

import csv
import dataclasses
import datetime
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

import contract
from components.lib import csv_contract, serving
from components.lib.card_precision import card_precision_at_k
from components.lib.rejection import DataRejectedError
from datasets.spec import DatasetSpec
from pipeline.scoring import record as record_lib
from pipeline.scoring.rows import input_files
from trainer import threshold as threshold_lib

OUTCOMES_DIR = "outcomes"
OUTCOMES_JSON = "outcomes.json"
NAMED = 10  # how many unmatched or duplicate keys are named (all are counted)


@dataclasses.dataclass
class Scores:
    """Every recorded score, as arrays in record order."""

    join: list  # the join key of each score: the key, or (file name, line)
    time: np.ndarray
    amount: np.ndarray
    probability: np.ndarray
    decision: np.ndarray
    version: list
    batch: list
    # Each score's card (the spec's card precision entity; None where its batch did not record one).
    card: list = dataclasses.field(default_factory=list)


def show(join) -> str:
    """A join key as the user reads it: the key, or FILE:LINE."""
    return f"{join[0]}:{join[1]}" if isinstance(join, tuple) else str(join)


def load_scores(output: str, only: list[str] | None = None) -> tuple[Scores, list[dict], str | None]:
    """(the scores, each batch's record, the key column they were recorded with or None).

    Args:
      only: the ids of the batches to read (default: all).

    Raises:
      ValueError: nothing recorded yet, or batches recorded with different keys.
    """
    import pyarrow.parquet as pq

    folders = [f for f in record_lib.batches(output) if only is None or f.name in only]
    if not folders:
        raise ValueError(
            f"{record_lib.scoring_root(output)}: no scoring recorded yet (fraud-pipeline predict records it)"
        )
    records = [record_lib.read_batch(f) for f in folders]
    keys = {r["key"] for r in records}
    if len(keys) > 1:
        raise ValueError(
            f"the batches under {record_lib.scoring_root(output)} were recorded with different keys: {keys}"
        )
    key = keys.pop()
    parts = defaultdict(list)
    for folder, rec in zip(folders, records):
        table = pq.read_table(folder / record_lib.SCORES_FILE)
        if key:
            parts["join"] += table.column("key").to_pylist()
        else:
            files = [Path(f).name for f in table.column("file").to_pylist()]
            parts["join"] += list(zip(files, table.column("line").to_pylist()))
        for name, column in (("time", contract.TIME), ("amount", contract.AMOUNT)):
            parts[name].append(table.column(column).to_numpy())
        parts["probability"].append(table.column("probability").to_numpy())
        parts["decision"].append(table.column("decision").to_numpy())
        parts["version"] += table.column("model_version").to_pylist()
        parts["batch"] += [rec["batch_id"]] * table.num_rows
        names = table.schema.names
        parts["card"] += table.column(record_lib.CARD).to_pylist() if record_lib.CARD in names else [None] * len(table)
    scores = Scores(
        parts["join"],
        np.concatenate(parts["time"]),
        np.concatenate(parts["amount"]),
        np.concatenate(parts["probability"]),
        np.concatenate(parts["decision"]),
        parts["version"],
        parts["batch"],
        parts["card"],
    )
    return scores, records, key


def _label(cell: str, spec: DatasetSpec) -> int | None:
    """A label cell as 0 or 1 (None when empty), by the spec's positive and negative values.

    Raises:
      ValueError: a value that is neither.
    """
    if spec.label_is_integer:
        return csv_contract.label(cell)
    if not cell.strip():
        return None
    value = spec.label_of(cell)
    if value is None:
        raise ValueError(f"{spec.label} is {cell!r}; it must be {spec.positive!r} or one of {list(spec.negative)}")
    return value


def load_labels(path: str, key: str | None, spec: DatasetSpec = contract.DEFAULT_DATASET) -> tuple[dict, dict]:
    """(join key -> 0 or 1, problems) of the label files: with a key, that column and the spec's label; without one,
    every row of each file by (file name, line), as `predict` recorded them.

    Raises:
      DataRejectedError: a file without the columns, naming it.
    """
    labels, seen, conflicting = {}, Counter(), set()
    bad = []
    for file in input_files(path):
        header = csv_contract.read_header(file)
        if spec.label not in header or (key and key not in header):
            wanted = f"{key} and {spec.label}" if key else spec.label
            raise DataRejectedError(f"{file}, line 1 (header): a label file needs the columns {wanted}")
        label_index = header.index(spec.label)
        key_index = header.index(key) if key else None
        for line, cells in csv_contract.careful_rows(file):
            join = cells[key_index] if key else (Path(file).name, line)
            try:
                value = _label(cells[label_index], spec)
            except ValueError as e:
                bad.append(f"{Path(file).name}, line {line}: {e}")
                continue
            if value is None:
                continue
            seen[join] += 1
            if join in labels and labels[join] != value:
                conflicting.add(join)
            labels[join] = value
    for join in conflicting:
        del labels[join]
    problems = {
        "duplicate_labels": sorted(show(k) for k, n in seen.items() if n > 1),
        "conflicting_labels": sorted(show(k) for k in conflicting),
        "unreadable_labels": bad,
    }
    return labels, problems


def _metrics(labels: np.ndarray, probability: np.ndarray, decision: np.ndarray, amount: np.ndarray, days, budget):
    """One group's realized numbers (labelled rows only, but rows and alerts count every score)."""
    tp = int(np.sum((decision == 1) & (labels == 1)))
    fp = int(np.sum((decision == 1) & (labels == 0)))
    fn = int(np.sum((decision == 0) & (labels == 1)))
    out = {
        "labelled": int(len(labels)),
        "frauds": int(labels.sum()),
        "alerts": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "pr_auc": None,
        "precision_at_budget": None,
        "fraud_amount_caught": float(amount[(decision == 1) & (labels == 1)].sum()),
        "fraud_amount_missed": float(amount[(decision == 0) & (labels == 1)].sum()),
    }
    if 0 < out["frauds"] < len(labels):
        from pipeline.scoring.curves import curves

        out["pr_auc"] = curves(labels, probability)["ap"]
    if budget and len(labels):
        # The day's N highest scores: what a team that works N alerts a day would have looked at.
        allowed = max(int(np.floor(budget * days)), 1)
        top = np.argsort(-probability, kind="stable")[:allowed]
        out["precision_at_budget"] = float(labels[top].mean())
    return out


def _card_precision(spec: DatasetSpec, scores: Scores, values: np.ndarray, mask: np.ndarray) -> dict:
    """{card_precision_at_K: value} over the masked labelled scores, for a spec with card precision ({} without;
    None when no masked score recorded its card)."""
    ranked = spec.card_precision
    if ranked is None:
        return {}
    at = np.flatnonzero(mask)
    cards = [scores.card[i] for i in at]
    if not any(c is not None for c in cards):
        return {ranked.metric: None}
    value = card_precision_at_k(scores.time[at], cards, values[at], scores.probability[at], ranked.k)
    return {ranked.metric: value}


def _recall_at_precision(labels: np.ndarray, probability: np.ndarray, at_precision: float) -> float | None:
    """Recall at a precision over the labelled scores (the blessing gate's second metric), None without frauds."""
    if labels.sum() == 0:
        return None
    pr = threshold_lib.precision_recall(labels, probability)
    reach = pr.recall[pr.precision >= at_precision]
    return float(reach.max()) if len(reach) else 0.0


def day_date(day: int, spec) -> str | None:
    """The calendar date (YYYY-MM-DD, UTC) of a day index when the spec's times are dates (ISO-8601, stored as
    seconds since the Unix epoch); None when they are seconds from the data's own start (the ULB file's Time)."""
    if spec.time_format != "iso8601":
        return None
    return datetime.datetime.fromtimestamp(day * contract.SECONDS_PER_DAY, tz=datetime.timezone.utc).date().isoformat()


def outcomes(
    output: str,
    labels_path: str,
    alerts_per_day: float | None = None,
    at_precision: float = 0.8,
    only: list[str] | None = None,
    online_store: str | None = None,
) -> dict:
    """The joined outcomes of every recorded score (see the module docstring), as outcomes.json holds them.

    Args:
      only: the ids of the batches to join (default: every recorded batch).
      online_store: with a spec that has a history section, the store the labels are written into (a URL; default
        the spec's, else SQLite under output): the fraud rates of its windows learn from them.
    """
    scores, records, key = load_scores(output, only)
    # The labels are read by the spec of the model that scored the first batch (the version carries it).
    spec = serving.dataset_of_model(records[0]["model"]["path"]) if records else contract.DEFAULT_DATASET
    labels, problems = load_labels(labels_path, key, spec)
    stored = _store_labels(spec, output, online_store, labels, key)
    counts = Counter(scores.join)
    duplicates = sorted(show(k) for k, n in counts.items() if n > 1)
    index = {}
    for i, join in enumerate(scores.join):
        index.setdefault(join, []).append(i)
    matched = [i for join in labels for i in index.get(join, [])]
    unmatched = [show(join) for join in labels if join not in index]
    labelled = np.zeros(len(scores.join), dtype=bool)
    values = np.full(len(scores.join), -1, dtype=np.int64)
    labelled[matched] = True
    for i in matched:
        values[i] = labels[scores.join[i]]
    day = np.floor(scores.time / contract.SECONDS_PER_DAY).astype(np.int64)
    groups = []
    for version in sorted(set(scores.version), key=contract.version_order):
        mask_version = np.array([v == version for v in scores.version])
        threshold = next(r["model"]["threshold"] for r in records if r["model"]["version"] == version)
        for d in sorted(set(day[mask_version].tolist())):
            mask = mask_version & (day == d)
            known = mask & labelled
            row = {
                "day": int(d),
                "date": day_date(int(d), spec),
                "model_version": version,
                "threshold": threshold,
                "rows": int(mask.sum()),
                "alerts_scored": int(scores.decision[mask].sum()),
                **_metrics(
                    values[known],
                    scores.probability[known],
                    scores.decision[known],
                    scores.amount[known],
                    1.0,
                    alerts_per_day,
                ),
            }
            row.update(_card_precision(spec, scores, values, known))
            groups.append(row)
    overall = _metrics(
        values[labelled], scores.probability[labelled], scores.decision[labelled], scores.amount[labelled],
        max(len(set(day.tolist())), 1), alerts_per_day,
    )  # fmt: skip
    overall.update(_card_precision(spec, scores, values, labelled))
    overall["rows"] = len(scores.join)
    overall["at_precision"] = at_precision
    overall["recall_at_precision"] = _recall_at_precision(values[labelled], scores.probability[labelled], at_precision)
    return {
        "output": str(Path(output).resolve()),
        "labels": labels_path,
        "key": key or "(file, line)",
        "alerts_per_day": alerts_per_day,
        "batches": [r["batch_id"] for r in records],
        "groups": groups,
        "overall": overall,
        "join": {
            "scored_rows": len(scores.join),
            "labels": len(labels),
            "matched_labels": len(labels) - len(unmatched),
            "unlabelled_scores": int((~labelled).sum()),
            "labels_never_scored": len(unmatched),
            "labels_never_scored_named": unmatched[:NAMED],
            "keys_scored_more_than_once": len(duplicates),
            "keys_scored_more_than_once_named": duplicates[:NAMED],
            **problems,
        },
        **({"online_store": stored} if stored else {}),
    }


def _store_labels(spec: DatasetSpec, output: str, url: str | None, labels: dict, key: str | None) -> dict | None:
    """Writes the labels into the online store of a spec with a history section (by the spec's key, which the store
    keeps its rows under); what was written, or why nothing was."""
    if not spec.history:
        return None
    if not key or key != spec.key:
        return {"written": 0, "reason": f"the scores were not recorded by the spec's key ({spec.key or 'none'})"}
    from pipeline.online_store.store import OnlineStore

    store = OnlineStore.open(spec, output, url)
    try:
        written = store.label({k: v for k, v in labels.items()})
    finally:
        store.close()
    return {"written": written, "where": store.where}


def version_floors(output: str) -> tuple[dict | None, str | None]:
    """(the blessing gates the newest recorded batch's model was pushed with, as its lineage records them; that
    version), or (None, version) for a version pushed before lineages held them, (None, None) with no batch."""
    folders = record_lib.batches(output)
    if not folders:
        return None, None
    model = record_lib.read_batch(folders[-1])["model"]
    path = Path(model["path"]) / contract.LINEAGE
    try:
        gates = json.loads(path.read_text()).get("gates")
    except (OSError, ValueError):
        gates = None
    return gates, str(model["version"])


def write(record: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / OUTCOMES_JSON
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def write_labels(path: Path, rows: list[tuple[str, int]], key: str) -> Path:
    """A label file as `outcomes` reads it (for replay and tests): the key and Class."""
    with csv_contract.open_text(str(path), "w") as f:
        writer = csv.writer(f)
        writer.writerow([key, contract.LABEL])
        writer.writerows(rows)
    return path
