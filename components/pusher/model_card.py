"""The model card the Pusher writes into every version it pushes: assets.extra/model_card.{json,md,html}.

Its fields are the Model Card Toolkit's (model_details, model_parameters, quantitative_analysis, considerations),
so a team that uses the toolkit recognises the document; it is rendered here, without the toolkit, whose pins do not
fit this project's (it wants another protobuf and TFX line). What the toolkit has no field for (the training window,
the gates against the baseline, drift and skew, the lineage) is under `fraud_pipeline`.

Every number comes from the run's own artifacts: TFMA's metrics and validation (components/lib/tfma_results.py),
StatisticsGen's counts, the DistributionValidator's measurements, the Trainer's threshold and summary. Intervals: 95%
Wilson score intervals for precision and recall (proportions of the test set), and for PR-AUC the logit interval of
Boyd, Eng and Page (2013, "Area under the precision-recall curve: point estimates and confidence intervals"), whose
width follows the number of frauds; ROC-AUC's is Hanley and McNeil's (1982).
"""

import html
import json
import math
import os
import re

from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

import contract
from components.lib import drift, serving, tfma_results
from datasets.spec import DatasetSpec

JSON_FILE = os.path.join("assets.extra", "model_card.json")
MARKDOWN_FILE = os.path.join("assets.extra", "model_card.md")
HTML_FILE = os.path.join("assets.extra", "model_card.html")
Z = 1.959964  # 95%
_COUNTS = ("example_count", "tp", "fp", "tn", "fn")

LIMITATIONS = [
    "The data covers two days of September 2013 of European card holders (the ULB/Worldline data set): weekly and "
    "seasonal patterns, and fraud that changes over months, are not in it.",
    "There is no card or customer identifier: nothing about a card's history (its usual amounts, its velocity) can "
    "be used, which is what most of fraud detection's signal is in practice.",
    "V1..V28 are principal components of features that are not published: the model cannot be explained in terms of "
    "the original fields, and a change upstream of the PCA would go unseen until the drift checks catch it.",
    "About 0.17% of the transactions are frauds: metrics on a test window rest on a few dozen frauds, hence the "
    "intervals; a slice holds a handful and is reported, not gated.",
]


def wilson(successes: float, n: float, z: float = Z) -> dict | None:
    """The Wilson score interval of a proportion, or None without trials."""
    if not n:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"lower_bound": max(0.0, centre - half), "upper_bound": min(1.0, centre + half)}


def pr_auc_interval(value: float, frauds: int, z: float = Z) -> dict | None:
    """Boyd, Eng and Page's logit interval of a PR-AUC over `frauds` positives."""
    if not frauds or not 0 < value < 1:
        return None
    eta = math.log(value / (1 - value))
    tau = 1 / math.sqrt(frauds * value * (1 - value))
    return {"lower_bound": _expit(eta - z * tau), "upper_bound": _expit(eta + z * tau)}


def _expit(x: float) -> float:
    """The logistic function without overflow: a slice with one fraud gives a logit thousands wide."""
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)  # underflows to 0.0 quietly
    return e / (1 + e)


def roc_auc_interval(value: float, frauds: int, normal: int, z: float = Z) -> dict | None:
    """Hanley and McNeil's interval of a ROC-AUC."""
    if not frauds or not normal:
        return None
    q1, q2 = value / (2 - value), 2 * value * value / (1 + value)
    variance = (value * (1 - value) + (frauds - 1) * (q1 - value**2) + (normal - 1) * (q2 - value**2)) / (
        frauds * normal
    )
    half = z * math.sqrt(max(variance, 0.0))
    return {"lower_bound": max(0.0, value - half), "upper_bound": min(1.0, value + half)}


def _metrics(values: dict, slice_name: str) -> list[dict]:
    """MCT performance_metrics of one slice: each metric with its interval where one is known."""
    tp, fp, fn = (values.get(k, 0) for k in ("tp", "fp", "fn"))
    count = values.get("example_count", 0)
    frauds = tp + fn
    intervals = {
        "precision": wilson(tp, tp + fp),
        "recall": wilson(tp, frauds),
        "recall_at_precision": wilson(values.get("recall_at_precision", 0) * frauds, frauds),
        "pr_auc": pr_auc_interval(values.get("pr_auc", 0), int(frauds)),
        "roc_auc": roc_auc_interval(values.get("roc_auc", 0), int(frauds), int(count - frauds)),
    }
    out = []
    for name in ("example_count", "pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp",
                 "tn", "fn"):  # fmt: skip
        if name in values:
            metric = {"type": name, "value": values[name], "slice": slice_name}
            if intervals.get(name):
                metric["confidence_interval"] = intervals[name]
            out.append(metric)
    return out


def _split_facts(statistics, spec: DatasetSpec = contract.DEFAULT_DATASET) -> dict:
    """Per split: rows, frauds and the time range, from StatisticsGen's output."""
    facts = {}
    for split in artifact_utils.decode_split_names(statistics.split_names):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        path = os.path.join(artifact_utils.get_split_uri([statistics], split), contract.STATISTICS_FILE)
        with fileio.open(path, "rb") as f:
            stats.ParseFromString(f.read())
        dataset = stats.datasets[0]
        row = {"rows": int(dataset.num_examples), "frauds": None, "time_range": None}
        for feature in dataset.features:
            name = ".".join(feature.path.step)
            if name == spec.label:
                row["frauds"] = int(sum(v.frequency for v in feature.string_stats.top_values if v.value == "1"))
            elif name == spec.time:
                row["time_range"] = [feature.num_stats.min, feature.num_stats.max]
        facts[split] = row
    return facts


def card(
    *,
    version: str,
    lineage: dict,
    evaluation,
    blessing,
    statistics,
    drift_anomalies,
    model_dir: str,
    pushed_at: str,
) -> dict:
    """The model card of a version as a dict with the Model Card Toolkit's top-level fields (see the docstring).

    Args: the artifacts of the run (the Evaluator's evaluation and blessing, StatisticsGen's statistics, the
      DistributionValidator's anomalies, each may be None), the model's SavedModel folder (for the threshold and the
      Trainer's summary), and the lineage the Pusher records.
    """
    with fileio.open(os.path.join(model_dir, contract.OPERATING_THRESHOLD)) as f:
        operating = json.load(f)
    with fileio.open(os.path.join(model_dir, contract.TRAINING_SUMMARY)) as f:
        training = json.load(f)
    training.pop("history", None)
    spec = serving.dataset_of_model(model_dir)
    metrics, failures, baseline = _evaluation(evaluation)
    performance = []
    for slice_name in sorted(metrics, key=lambda s: (s != "overall", s)):
        performance += _metrics(metrics[slice_name], slice_name)
    splits = _split_facts(statistics, spec) if statistics is not None else {}
    comparisons = []
    if drift_anomalies is not None:
        comparisons = drift.read_comparisons(
            drift_anomalies.uri, artifact_utils.decode_split_names(drift_anomalies.split_names)
        )
    blessed = blessing is not None and blessing.get_int_custom_property("blessed") == 1
    return {
        "model_details": _model_details(version, pushed_at, operating),
        "model_parameters": _model_parameters(training.get("hparams", {}), splits),
        "quantitative_analysis": {"performance_metrics": performance},
        "considerations": _considerations(metrics.get("overall", {})),
        "fraud_pipeline": {
            "blessed": blessed,
            "gates_failed": failures,
            "baseline": {"overall": baseline} if baseline else None,
            "threshold": operating,
            "training": {k: training[k] for k in ("epochs_run", "best_epoch", "best_val_prc") if k in training},
            "training_window": {
                "splits": splits,
                "spans": (lineage.get("data") or {}).get("spans"),
                "files": (lineage.get("data") or {}).get("files"),
            },
            "drift_and_skew": comparisons,
            "lineage": lineage,
            "dataset": _dataset(spec),
        },
    }


def _dataset(spec: DatasetSpec) -> dict:
    """What the model reads, by its dataset spec: the label, the time, and each feature with what is done to it."""
    numeric = [
        {"name": f.name, "kind": "numeric", "transform": f.transform, "clip": f.clip, "missing": f.missing}
        for f in spec.numeric
    ]
    categorical = [
        {
            "name": f.name,
            "kind": "categorical",
            "encoding": "embedding" if f.embedded else "one-hot",
            "vocabulary": f"top {f.top_k}, seen at least {f.min_frequency} times, {f.oov_buckets} out-of-vocabulary",
            "missing": f.missing,
        }
        for f in spec.categorical
    ]
    return {
        "name": spec.name,
        "label": {"column": spec.label, "positive": spec.positive},
        "time": {"column": spec.time, "format": spec.time_format},
        "features": numeric + categorical,
        "slices": [s.name for s in spec.slices],
    }


def _evaluation(evaluation) -> tuple[dict, list, dict | None]:
    """(the candidate's metrics by slice, the gates it failed, the baseline's overall metrics) of an evaluation."""
    if evaluation is None:
        return {}, [], None
    per_slice = tfma_results.read_metrics(evaluation.uri)
    metrics = {s: m.get(tfma_results.CANDIDATE, {}) for s, m in per_slice.items()}
    baseline = per_slice.get("overall", {}).get(tfma_results.BASELINE)
    _, failures = tfma_results.read_validation(evaluation.uri, per_slice)
    return metrics, failures, baseline


def _model_details(version: str, pushed_at: str, operating: dict) -> dict:
    return {
        "name": contract.SERVING_MODEL_NAME,
        "overview": (
            "Scores card transactions for fraud: the probability that a transaction is fraudulent, and a decision "
            f"(1 = send to review) at the operating threshold {operating['threshold']:.6g}, chosen on the eval "
            f"split ({operating['policy']['kind']} policy)."
        ),
        "version": {"name": version, "date": pushed_at},
        "references": [{"reference": "https://www.tensorflow.org/tutorials/structured_data/imbalanced_data"}],
        "owners": [],
        "licenses": [],
    }


def _model_parameters(hparams: dict, splits: dict) -> dict:
    return {
        "model_architecture": (
            f"{hparams.get('layers', 1)} x Dense({hparams.get('units')}, relu) with dropout "
            f"{hparams.get('dropout')} -> Dense(1, sigmoid), imbalance strategy {hparams.get('strategy')}, "
            f"{hparams.get('ensemble', 1)} member(s); inputs are z-scores of V1..V28 and log(Amount) with the "
            "train split's statistics, clipped to [-5, 5], applied inside the SavedModel (TF Transform)"
        ),
        "data": [{"name": split, **facts} for split, facts in splits.items()],
        "input_format": "serialized tf.Example with the 30 raw features Time, V1..V28, Amount (no Class)",
        "output_format": "probability (float), decision (int64, 1 = flag), signature serving_default",
    }


def _considerations(overall: dict) -> dict:
    return {
        "users": ["a fraud operations team reviewing the transactions the model flags"],
        "use_cases": [
            "ranking and flagging card transactions for review, with a person deciding on each flagged one",
        ],
        "out_of_scope_uses": [
            "declining transactions or blocking cards without review",
            "judging card holders, merchants or regions: the data has no such identifiers, and the model has "
            "not been evaluated for them",
        ],
        "limitations": [{"description": text} for text in LIMITATIONS],
        "tradeoffs": [
            {
                "description": (
                    "The threshold trades missed frauds for false alarms: at it, on the later test window, "
                    f"precision {_value(overall.get('precision'))} and recall {_value(overall.get('recall'))}."
                )
            }
        ],
        "ethical_considerations": [
            {
                "name": "Flagged transactions delay or trouble honest customers",
                "mitigation_strategy": "a person reviews each flag; the alert volume is sized to the team",
            }
        ],
    }


def _interval(metric: dict) -> str:
    ci = metric.get("confidence_interval")
    return f"{ci['lower_bound']:.4f} to {ci['upper_bound']:.4f}" if ci else ""


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _md(value)


def _md(value) -> str:
    """Text from the data or the run (a file name, a message) as Markdown shows it and no more: HTML's special
    characters as entities (a Markdown viewer passes raw HTML through), a table's | escaped, control characters and
    line ends as spaces."""
    text = "".join(" " if (ord(c) < 32 or 127 <= ord(c) < 160) else c for c in str(value))
    return html.escape(text, quote=False).replace("|", "\\|")


def _from_md(text: str) -> str:
    """A piece of the Markdown back to its text (to_html escapes it again for HTML)."""
    return html.unescape(text.replace("\\|", "|"))


def markdown(doc: dict) -> str:
    """The card as Markdown."""
    details, params = doc["model_details"], doc["model_parameters"]
    extra = doc["fraud_pipeline"]
    lines = [
        f"# Model card: {_md(details['name'])}, version {_md(details['version']['name'])}",
        "",
        f"Pushed {_md(details['version']['date'])}. {_md(details['overview'])}",
        "",
        "## Model parameters",
        "",
        f"- Architecture: {params['model_architecture']}",
        f"- Input: {params['input_format']}",
        f"- Output: {params['output_format']}",
        "",
        "## Training window",
        "",
        "| split | rows | frauds | Time range (s) |",
        "|---|---|---|---|",
    ]
    for split in params["data"]:
        time_range = split["time_range"]
        shown = f"{time_range[0]:.0f} to {time_range[1]:.0f}" if time_range else "-"
        lines.append(f"| {_md(split['name'])} | {split['rows']} | {split['frauds']} | {shown} |")
    dataset = extra.get("dataset")
    if dataset:
        lines += ["", f"## Features (dataset {_md(dataset['name'])})", ""]
        lines += ["| feature | kind | what is done | missing |", "|---|---|---|---|"]
        for f in dataset["features"]:
            done = f.get("transform") or f"{f['encoding']}; {f['vocabulary']}"
            lines.append(f"| {_md(f['name'])} | {f['kind']} | {_md(done)} | {f['missing']} |")
        lines.append(
            f"\nLabel {_md(dataset['label']['column'])} (positive: {_md(dataset['label']['positive'])}); time "
            f"{_md(dataset['time']['column'])} ({dataset['time']['format']})."
        )
    spans = extra["training_window"]["spans"]
    lines += [
        "",
        f"Files: {', '.join(_md(f) for f in extra['training_window']['files'] or [])}"
        + (f"; spans {', '.join(_md(s) for s in spans)}" if spans else ""),
    ]
    lines += ["", "## Performance (test split, the newest 20%)", "", "| slice | metric | value | 95% interval |",
              "|---|---|---|---|"]  # fmt: skip
    for metric in doc["quantitative_analysis"]["performance_metrics"]:
        shown = f"{metric['value']:.0f}" if metric["type"] in _COUNTS else _value(metric["value"])
        lines.append(f"| {_md(metric['slice'])} | {_md(metric['type'])} | {shown} | {_interval(metric)} |")
    op = extra["threshold"]
    lines += [
        "",
        "## Operating threshold",
        "",
        f"{op['threshold']:.6g}, policy {json.dumps(op['policy'], sort_keys=True)}",
    ]
    lines += ["", "## Gates", ""]
    lines.append("Blessed." if extra["blessed"] else "Not blessed.")
    for failure in extra["gates_failed"]:
        lines.append(f"- failed: {_md(failure['metric'])} ({_md(failure['kind'])}) {_md(failure['message'])}")
    if extra["baseline"]:
        shown = ", ".join(
            f"{k} {v:.4f}"
            for k, v in sorted(extra["baseline"]["overall"].items())
            if k in ("pr_auc", "recall_at_precision")
        )
        lines.append(f"- the baseline (the model serving before it): {shown}")
    lines += ["", "## Drift and skew", ""]
    for comparison in extra["drift_and_skew"]:
        top = drift.largest(comparison["features"])
        lines.append(
            f"- {_md(comparison['name'])}: largest {_md(top['feature'])} {top['value']:.3f} (threshold "
            f"{top['threshold']:g})"
            if top
            else f"- {_md(comparison['name'])}: nothing measured"
        )
    considerations = doc["considerations"]
    lines += ["", "## Intended use", ""] + [f"- {_md(u)}" for u in considerations["use_cases"]]
    lines += ["", "Not for:", ""] + [f"- {_md(u)}" for u in considerations["out_of_scope_uses"]]
    lines += ["", "## Limitations of this data", ""]
    lines += [f"- {_md(x['description'])}" for x in considerations["limitations"]]
    lineage = extra["lineage"]
    lines += ["", "## Lineage", "", f"- training identity {_md(lineage.get('identity'))}",
              f"- data fingerprint {_md((lineage.get('data') or {}).get('fingerprint'))}",
              f"- trained as {_md(lineage.get('model_uri'))}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def to_html(doc: dict) -> str:
    """The card as a self-contained HTML page (the Markdown's tables and lists)."""
    body = []
    in_table = False
    for line in markdown(doc).splitlines():
        if line.startswith("|"):
            cells = [_from_md(c.strip()) for c in re.split(r"(?<!\\)\|", line.strip("|"))]
            if set(line) <= set("|-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(_from_md(line[2:]))}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(_from_md(line[3:]))}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {html.escape(_from_md(line[2:]))}</p>")
        elif line:
            body.append(f"<p>{html.escape(_from_md(line))}</p>")
    if in_table:
        body.append("</table>")
    style = "body{font-family:sans-serif;max-width:1000px;margin:2em auto}td,th{border:1px solid #ddd;padding:2px 6px}"
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>Model card</title><style>{style}</style></head>"
    return f"{head}<body>{''.join(body)}</body></html>\n"


def write(folder: str, doc: dict) -> None:
    """Writes the card's three files into a version folder (before the version becomes visible)."""
    fileio.makedirs(os.path.join(folder, "assets.extra"))
    for name, text in (
        (JSON_FILE, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"),
        (MARKDOWN_FILE, markdown(doc)),
        (HTML_FILE, to_html(doc)),
    ):
        with fileio.open(os.path.join(folder, name), "w") as f:
            f.write(text)
