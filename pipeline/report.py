"""The run report: one self-contained HTML file (figures embedded as PNG data) plus the PNG files.

Everything comes from the run's own artifacts: summary.json (itself read from ML Metadata, StatisticsGen and
the Evaluator's TFMA result), the training history saved with the model, and the model's serving signature run
over the raw splits ExampleGen wrote. Every number shown that comes from summary.json carries its path there in a
data-key attribute, so tests (and curious users) can check the page against the run.
"""

import base64
import html
import io
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first.
import numpy as np  # noqa: E402

from pipeline import features  # noqa: E402
from trainer import threshold as threshold_lib  # noqa: E402
from trainer.hparams import ThresholdPolicy  # noqa: E402

REPORT_FILE = "report.html"
FIGURES = (
    "class_balance",
    "training_history",
    "confusion_matrix",
    "roc",
    "precision_recall",
    "threshold",
    "slices",
    "feature_distributions",
)
NORMAL_COLOR, FRAUD_COLOR = "#4c72b0", "#dd5144"
SPLIT_COLORS = {"train": "#4c72b0", "eval": "#55a868", "test": "#dd8452"}
HISTORY_METRICS = (
    ("loss", "loss"),
    ("prc", "PR-AUC"),
    ("auc", "ROC-AUC"),
    ("precision", "precision (at 0.5)"),
    ("recall", "recall (at 0.5)"),
)


# ---------------------------------------------------------------------------------------------------------------
# Numbers: formatted for the page, tagged with where they come from.


# Numbers shown as whole counts; everything else is a rate, an area or a threshold.
COUNT_KEYS = {"tp", "fp", "tn", "fn", "example_count", "rows", "frauds", "epochs_run", "best_epoch"}


def _fmt(value, count: bool = False, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if count:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def _at(summary: dict, path) -> object:
    value = summary
    for step in path:
        value = value[step]
    return value


def num(summary: dict, *path) -> str:
    """The value at path in summary.json, formatted, in a span whose data-key is that path."""
    value = _at(summary, path)
    key = "/".join(str(p) for p in path)
    return (
        f'<span class="num" data-key="{html.escape(key)}" data-value="{html.escape(repr(value))}">'
        f"{_fmt(value, count=path[-1] in COUNT_KEYS)}</span>"
    )


def _esc(text) -> str:
    return html.escape(str(text))


# ---------------------------------------------------------------------------------------------------------------
# Curves computed from the scores (exact, every distinct score is a cut).


def curves(labels: np.ndarray, scores: np.ndarray) -> dict:
    """ROC and precision-recall points, their areas, from every distinct cut of the scores."""
    _, tp, fp = threshold_lib.sweep(labels, scores)
    pos = max(int(np.sum(labels)), 1)
    neg = max(len(labels) - int(np.sum(labels)), 1)
    tpr, fpr = tp / pos, fp / neg
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.ones(len(tp)), where=flagged > 0)
    # Average precision: each step in recall weighted by the precision reached there.
    ap = float(np.sum(np.diff(tpr) * precision[1:]))
    roc_auc = float(np.trapz(np.r_[tpr, 1.0], np.r_[fpr, 1.0]))
    return {"fpr": fpr, "tpr": tpr, "precision": precision[1:], "recall": tpr[1:], "roc_auc": roc_auc, "ap": ap}


# ---------------------------------------------------------------------------------------------------------------
# Figures.


def _fig_class_balance(summary):
    splits = summary["splits"]
    names = [s for s in features.SPLITS if s in splits]
    frauds = np.array([splits[s]["frauds"] or 0 for s in names])
    rows = np.array([splits[s]["rows"] for s in names])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(names))
    ax.bar(x - 0.2, rows - frauds, 0.4, label="normal", color=NORMAL_COLOR)
    ax.bar(x + 0.2, frauds, 0.4, label="fraud", color=FRAUD_COLOR)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.set_xticks(x, [f"{n}\n{100 * f / r:.2f}% fraud" for n, f, r in zip(names, frauds, rows)])
    ax.set_ylabel("rows (log scale)")
    ax.set_title("Class imbalance per split")
    for xi, f, r in zip(x, frauds, rows):
        ax.text(xi - 0.2, r - f, f"{r - f:,}", ha="center", va="bottom", fontsize=8)
        ax.text(xi + 0.2, max(f, 1), f"{f:,}", ha="center", va="bottom", fontsize=8)
    ax.legend()
    return fig


def _fig_history(history: dict, best_epoch: int):
    fig, axes = plt.subplots(1, len(HISTORY_METRICS), figsize=(16, 3.4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, (key, title) in zip(axes, HISTORY_METRICS):
        ax.plot(epochs, history[key], color=SPLIT_COLORS["train"], label="train")
        ax.plot(epochs, history[f"val_{key}"], color=SPLIT_COLORS["eval"], linestyle="--", label="validation (eval)")
        ax.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Training history (dotted line: best epoch {best_epoch}, whose weights were kept)", fontsize=10)
    fig.tight_layout()
    return fig


def _fig_confusion(counts: dict, threshold: float):
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]], dtype=float)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    # Colour by the share of each true class, so the rare fraud row is as readable as the normal one.
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(
                j, i, f"{int(matrix[i, j]):,}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "k"
            )
    ax.set_xticks([0, 1], ["normal", "fraud"])
    ax.set_yticks([0, 1], ["normal", "fraud"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Test split at the operating threshold {threshold:.4f}", fontsize=10)
    fig.tight_layout()
    return fig


def operating_points(scored: dict, threshold) -> dict:
    """Per key: the confusion counts, precision, recall and false positive rate at a threshold (or per-key ones)."""
    points = {}
    for key, s in scored.items():
        at = threshold[key] if isinstance(threshold, dict) else threshold
        c = threshold_lib.confusion(s.labels, s.probability, at)
        negatives = c["fp"] + c["tn"]
        points[key] = {**c, "fpr": c["fp"] / negatives if negatives else float("nan")}
    return points


def roc_figure(curve_by_key: dict, points: dict, colors: dict, title: str):
    """ROC curves on a linear and a log false-positive-rate scale, one per key, each with its operating point."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, log in zip(axes, (False, True)):
        for key, c in curve_by_key.items():
            ax.plot(c["fpr"], c["tpr"], color=colors.get(key), label=f"{key} (AUC {c['roc_auc']:.4f})")
            ax.plot(points[key]["fpr"], points[key]["recall"], "o", color=colors.get(key))
        ax.set_xlabel("false positive rate" + (" (log scale)" if log else ""))
        ax.set_ylabel("true positive rate (recall)")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(left=1e-5)
        ax.grid(alpha=0.3)
    axes[0].plot([0, 1], [0, 1], color="grey", linewidth=0.6, linestyle=":")
    axes[0].legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def pr_figure(curve_by_key: dict, points: dict, colors: dict, title: str, prevalence: dict | None = None):
    """Precision-recall curves, one per key, each with its operating point (and its fraud rate, if given)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for key, c in curve_by_key.items():
        ax.plot(c["recall"], c["precision"], color=colors.get(key), label=f"{key} (AP {c['ap']:.4f})")
        ax.plot(points[key]["recall"], points[key]["precision"], "o", color=colors.get(key))
        if prevalence:
            ax.axhline(prevalence[key], color=colors.get(key), linewidth=0.6, linestyle=":")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _fig_threshold(eval_scored, operating: dict):
    cuts, tp, fp = threshold_lib.sweep(eval_scored.labels, eval_scored.probability)
    pos = max(int(eval_scored.labels.sum()), 1)
    flagged = tp + fp
    keep = flagged > 0
    precision = tp[keep] / flagged[keep]
    recall = tp[keep] / pos
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step(cuts[keep], precision, where="post", color="#8172b2", label="precision")
    ax.step(cuts[keep], recall, where="post", color="#55a868", label="recall")
    chosen = operating["threshold"]
    ax.axvline(chosen, color="k", linewidth=1, label=f"operating threshold {chosen:.4f}")
    policy = ThresholdPolicy.from_dict(operating["policy"])
    if policy.kind == "precision":
        ax.axhline(policy.min_precision, color="#8172b2", linewidth=0.8, linestyle=":", label="precision target")
    ax.set_xscale("log")
    ax.set_xlabel("threshold on the fraud probability (log scale)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if policy.kind == "cost":
        cost = policy.fn_cost * (pos - tp[keep]) + policy.fp_cost * fp[keep]
        twin = ax.twinx()
        twin.step(cuts[keep], cost, where="post", color="#c44e52", linestyle="--", label="expected cost")
        twin.set_ylabel("expected cost on eval")
        twin.legend(loc="center right", fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Eval split: where the operating threshold was chosen", fontsize=10)
    fig.tight_layout()
    return fig


def _fig_slices(slices: dict):
    names = list(slices)
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(names) + 1.4))
    y = np.arange(len(names))
    for offset, key, color in ((-0.2, "recall", "#55a868"), (0.2, "precision", "#8172b2")):
        values = [slices[n].get(key) for n in names]
        values = [0.0 if v is None or math.isnan(v) else v for v in values]
        ax.barh(y + offset, values, 0.4, color=color, label=f"{key} at the operating threshold")
    labels = [f"{n}  ({int(slices[n].get('tp', 0) + slices[n].get('fn', 0))} frauds)" for n in names]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
    fig.suptitle("Test split per slice", fontsize=10)
    fig.tight_layout()
    return fig


def separating_features(columns: dict, labels: np.ndarray, count: int = 2) -> list[str]:
    """The V features whose fraud and normal means differ most, in pooled standard deviations."""
    fraud = labels.astype(bool)

    def separation(name):
        x = columns[name]
        std = np.std(x) or 1.0
        return abs(np.mean(x[fraud]) - np.mean(x[~fraud])) / std

    return sorted(features.V_FEATURES, key=separation, reverse=True)[:count]


def _fig_features(train_scored, names: list[str]):
    columns = dict(train_scored.columns)
    columns["log Amount"] = np.log(columns[features.AMOUNT] + 0.001)
    shown = names + ["log Amount"]
    fraud = train_scored.labels.astype(bool)
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.4))
    for ax, name in zip(axes, shown):
        x = columns[name]
        low, high = np.percentile(x, [0.5, 99.5])
        low, high = min(low, np.percentile(x[fraud], 1)), max(high, np.percentile(x[fraud], 99))
        bins = np.linspace(low, high, 50)
        ax.hist(x[~fraud], bins=bins, density=True, alpha=0.6, color=NORMAL_COLOR, label="normal")
        ax.hist(x[fraud], bins=bins, density=True, alpha=0.6, color=FRAUD_COLOR, label="fraud")
        ax.set_title(name)
        ax.set_yticks([])
    axes[0].legend()
    fig.suptitle("Train split: feature distributions of frauds and normal transactions (each scaled to 1)", fontsize=10)
    fig.tight_layout()
    return fig


def save_png(fig, out_dir: str, name: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = buffer.getvalue()
    with open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
        f.write(data)
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------------------------------
# The page.

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #eee; }
.verdict { font-size: 1.2em; font-weight: bold; padding: .4em .8em; display: inline-block; border-radius: 4px; }
.pass { background: #dff0d8; color: #2b542c; } .fail { background: #f2dede; color: #843534; }
.muted { color: #666; font-size: .9em; }
ul.counts li { margin: .15em 0; }
"""


def _figure(name: str, images: dict, caption: str) -> str:
    if name not in images:
        return ""
    return (
        f'<figure id="fig-{name}"><img alt="{_esc(name)}" src="data:image/png;base64,{images[name]}">'
        f"<figcaption class='muted'>{caption}</figcaption></figure>"
    )


def _gate_rows(summary: dict) -> str:
    evaluation = summary["evaluation"]
    gates = evaluation["gates"]
    baseline = evaluation["baseline"]
    rows = []
    floors = (
        ("pr_auc", "min_pr_auc", "PR-AUC"),
        ("recall_at_precision", "min_recall_at_precision", f"recall at precision {gates['at_precision']}"),
    )
    for metric, floor_key, label in floors:
        value = evaluation["overall"].get(metric)
        ok = value is not None and value >= gates[floor_key]
        rows.append(
            f"<tr><td>{_esc(label)} &ge; floor</td><td>{num(summary, 'evaluation', 'overall', metric)}</td>"
            f"<td>{num(summary, 'evaluation', 'gates', floor_key)}</td><td>&mdash;</td>"
            f"<td class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'fail'}</td></tr>"
        )
    drops = (("pr_auc", "max_pr_auc_drop", "PR-AUC"), ("recall_at_precision", "max_recall_drop", "recall at precision"))
    for metric, drop_key, label in drops:
        if baseline is None or metric not in baseline["overall"]:
            rows.append(
                f"<tr><td>{_esc(label)}: drop vs latest blessed &le; "
                f"{num(summary, 'evaluation', 'gates', drop_key)}</td><td colspan='3'>no baseline (first run): "
                "not applied</td><td>&mdash;</td></tr>"
            )
            continue
        value, before = evaluation["overall"][metric], baseline["overall"][metric]
        ok = value - before >= -evaluation["gates"][drop_key]
        rows.append(
            f"<tr><td>{_esc(label)}: drop vs latest blessed &le; {num(summary, 'evaluation', 'gates', drop_key)}</td>"
            f"<td>{num(summary, 'evaluation', 'overall', metric)}</td><td>&mdash;</td>"
            f"<td>{num(summary, 'evaluation', 'baseline', 'overall', metric)}</td>"
            f"<td class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'fail'}</td></tr>"
        )
    return "".join(rows)


def _verdict_section(summary: dict) -> str:
    evaluation = summary["evaluation"]
    if evaluation is None:
        return f"<p>No evaluation: {_esc(summary['message'])}</p>"
    blessed = summary["blessed"]
    parts = [
        f"<p><span class='verdict {'pass' if blessed else 'fail'}' id='verdict'>"
        f"{'BLESSED and pushed' if blessed and summary['pushed_model'] else 'NOT BLESSED: nothing pushed'}"
        "</span></p>",
        f"<p>{_esc(summary['message'])}</p>",
        f"<p class='muted'>Baseline: {_esc(summary['baseline'])}</p>",
        "<table><tr><th>gate (test split, overall)</th><th>value</th><th>floor</th><th>latest blessed</th>"
        f"<th>result</th></tr>{_gate_rows(summary)}</table>",
    ]
    if summary["not_blessed_reasons"]:
        items = "".join(f"<li>{_esc(r['message'] or r['metric'])}</li>" for r in summary["not_blessed_reasons"])
        parts.append(f"<p>The Evaluator's reasons:</p><ul>{items}</ul>")
    return "".join(parts)


def _threshold_section(summary: dict, images: dict) -> str:
    op = summary.get("operating_threshold")
    if op is None:
        return "<p>No model was trained in this run.</p>"
    met = op["target_met"]
    warning = (
        "<p class='fail'>No threshold reached the precision target on the eval split; the one with the highest "
        "precision is used.</p>"
        if met is False
        else ""
    )
    rows = []
    for split in ("eval", "test"):
        if split not in op:
            continue
        cells = "".join(f"<td>{num(summary, 'operating_threshold', split, k)}</td>" for k in ("precision", "recall"))
        counts = "".join(f"<td>{num(summary, 'operating_threshold', split, k)}</td>" for k in ("tp", "fp", "fn", "tn"))
        rows.append(f"<tr><td>{split}</td>{cells}{counts}</tr>")
    cost = (
        f"<p>Expected cost on eval at this threshold: {num(summary, 'operating_threshold', 'eval', 'expected_cost')}"
        "</p>"
        if "expected_cost" in op["eval"]
        else ""
    )
    return (
        f"<p>Operating threshold <b>{num(summary, 'operating_threshold', 'threshold')}</b>, chosen on the eval split "
        f"({_esc(op['policy_description'])}), never on test. The model carries it: "
        "<code>assets.extra/operating_threshold.json</code> next to the SavedModel, and the serving signature returns "
        "<code>decision</code> (probability &ge; threshold) alongside <code>probability</code>. A flagged "
        "transaction is one the model would send to review.</p>"
        f"{warning}<table><tr><th>split</th><th>precision</th><th>recall</th><th>TP</th><th>FP</th><th>FN</th>"
        f"<th>TN</th></tr>{''.join(rows)}</table>{cost}"
        + _figure(
            "threshold",
            images,
            "Precision and recall on the eval split for every threshold. Eval is where the threshold is chosen; the "
            "test split above shows how it holds on later, unseen transactions.",
        )
    )


def _confusion_section(summary: dict, images: dict) -> str:
    if summary["evaluation"] is None:
        return "<p>No evaluation in this run.</p>"
    o = ("evaluation", "overall")
    total = int(summary["evaluation"]["overall"]["tp"] + summary["evaluation"]["overall"]["fn"])
    return (
        _figure(
            "confusion_matrix",
            images,
            "Rows: the truth; columns: the model's decision at its operating threshold. Colour: the share of each row.",
        )
        + "<ul class='counts'>"
        f"<li>Legitimate Transactions Detected (True Negatives): {num(summary, *o, 'tn')}</li>"
        f"<li>Legitimate Transactions Incorrectly Detected (False Positives): {num(summary, *o, 'fp')}</li>"
        f"<li>Fraudulent Transactions Missed (False Negatives): {num(summary, *o, 'fn')}</li>"
        f"<li>Fraudulent Transactions Detected (True Positives): {num(summary, *o, 'tp')}</li>"
        f"<li>Total Fraudulent Transactions: {total:,}</li></ul>"
        f"<p>Precision {num(summary, *o, 'precision')}, recall {num(summary, *o, 'recall')} "
        "(TFMA, test split, at the operating threshold).</p>"
    )


def _metrics_table(summary: dict) -> str:
    if summary["evaluation"] is None:
        return ""
    names = ("example_count", "pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp", "fn", "tn")
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = [("overall", ("evaluation", "overall"))] + [
        (name, ("evaluation", "slices", name)) for name in summary["evaluation"]["slices"]
    ]
    body = []
    for label, path in rows:
        values = _at(summary, path)
        cells = "".join(f"<td>{num(summary, *path, n)}</td>" if n in values else "<td>n/a</td>" for n in names)
        body.append(f"<tr><td>{_esc(label)}</td>{cells}</tr>")
    return f"<table id='metrics'><tr><th>slice</th>{head}</tr>{''.join(body)}</table>"


def _splits_table(summary: dict) -> str:
    rows = "".join(
        f"<tr><td>{split}</td><td>{num(summary, 'splits', split, 'rows')}</td>"
        f"<td>{num(summary, 'splits', split, 'frauds')}</td>"
        f"<td>{100 * (c['frauds'] or 0) / max(c['rows'], 1):.3f}%</td></tr>"
        for split, c in sorted(summary["splits"].items(), key=lambda kv: features.SPLITS.index(kv[0]))
    )
    return f"<table><tr><th>split</th><th>rows</th><th>frauds</th><th>fraud rate</th></tr>{rows}</table>"


def render(summary: dict, images: dict, computed: dict) -> str:
    """The HTML page of a run from its summary, the base64 PNGs and the numbers computed from the scores."""
    trainer = summary.get("trainer") or {}
    split_note = {
        "time": "by time: train on the oldest 64%, eval on the next 16%, test on the newest 20%",
        "random": "random (hash) 64/16/20",
    }.get(summary["input"]["split"], summary["input"]["split"])
    sections = [
        f"<h1>Fraud pipeline run report</h1><p class='muted'>Run {_esc(summary.get('run_id'))}, "
        f"{_esc(summary['started_at'])} &ndash; {_esc(summary['finished_at'])}. Data: "
        f"<code>{_esc(summary['input']['path'])}</code>, split {_esc(split_note)}. Strategy "
        f"<b>{_esc(summary['hparams']['strategy'])}</b>. Status: <b>{_esc(summary['status'])}</b>.</p>",
        "<h2>Blessing verdict</h2>" + _verdict_section(summary),
        "<h2>The data: class imbalance</h2>" + _splits_table(summary) + _figure("class_balance", images, ""),
    ]
    if summary.get("anomalies"):
        items = "".join(
            f"<li>{_esc(a.get('split'))}: {_esc(a.get('feature'))}: {_esc(a.get('description'))}</li>"
            for a in summary["anomalies"]
        )
        sections.append(f"<h2>Data rejected</h2><ul>{items}</ul>")
    if trainer:
        weights = trainer.get("class_weight")
        weights = ", ".join(f"{k}: {v:.3f}" for k, v in weights.items()) if weights else None
        sections.append(
            "<h2>Training</h2>"
            f"<p>Initial output bias {num(summary, 'trainer', 'initial_bias')} (log of frauds/normal in train); class "
            f"weights {_esc(weights) if weights else 'none'}; {num(summary, 'trainer', 'epochs_run')} epochs, best "
            f"epoch {num(summary, 'trainer', 'best_epoch')} with validation PR-AUC "
            f"{num(summary, 'trainer', 'best_val_prc')}.</p>"
            + _figure(
                "training_history",
                images,
                "Keras metrics per epoch; precision and recall here are at Keras' fixed 0.5, not the operating "
                "threshold. Class weights and oversampling move the scores, so compare strategies on PR-AUC.",
            )
        )
    sections.append("<h2>Operating threshold</h2>" + _threshold_section(summary, images))
    sections.append("<h2>Confusion matrix (test split)</h2>" + _confusion_section(summary, images))
    if "roc" in images:
        sections.append(
            "<h2>ROC and precision&ndash;recall curves</h2>"
            + _figure(
                "roc",
                images,
                "Train and test splits, every distinct score a threshold. Normal transactions vastly outnumber "
                "frauds, so the log-scale view on the right shows the region that matters: few false positives.",
            )
            + _figure("precision_recall", images, "")
            + "<p class='muted'>Areas computed exactly from the scores: "
            + ", ".join(
                f"{split} ROC-AUC {c['roc_auc']:.4f}, AP {c['ap']:.4f}" for split, c in computed["curves"].items()
            )
            + ". The Evaluator's table values (TFMA) use 10,000 thresholds, so they can differ in the last digits."
            "</p>"
        )
    if summary["evaluation"] is not None:
        sections.append(
            "<h2>Test metrics per slice</h2>"
            + _metrics_table(summary)
            + _figure("slices", images, "A slice holds few frauds, so its numbers are noisy; gates use the overall.")
        )
    if "feature_distributions" in images:
        sections.append(
            "<h2>Frauds versus normal transactions</h2>"
            + _figure(
                "feature_distributions",
                images,
                f"The two V features that separate the classes most on this run's train split "
                f"({', '.join(computed['separating_features'])}), and log(Amount).",
            )
        )
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Fraud pipeline report {_esc(summary.get('run_id'))}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def build(summary: dict, out_dir: str) -> str:
    """Writes report.html, the PNGs and report.json (what was computed here) into out_dir; returns the HTML path."""
    os.makedirs(out_dir, exist_ok=True)
    images: dict[str, str] = {}
    computed: dict = {"curves": {}, "separating_features": [], "operating_points": {}}
    if summary["splits"]:
        images["class_balance"] = save_png(_fig_class_balance(summary), out_dir, "class_balance")
    trainer = summary.get("trainer")
    if trainer:
        with open(trainer["history_path"]) as f:
            history = json.load(f)["history"]
        images["training_history"] = save_png(_fig_history(history, trainer["best_epoch"]), out_dir, "training_history")
    evaluation = summary.get("evaluation")
    op = summary.get("operating_threshold")
    if evaluation is not None and op is not None:
        images["confusion_matrix"] = save_png(
            _fig_confusion(evaluation["overall"], op["threshold"]), out_dir, "confusion_matrix"
        )
        images["slices"] = save_png(_fig_slices(evaluation["slices"]), out_dir, "slices")
    artifacts = summary.get("artifacts", {})
    if op is not None and "model" in artifacts and "examples" in artifacts:
        from pipeline import predictions  # TensorFlow: only when there is a model to run.

        _, serve = predictions.load_model(artifacts["model"])
        scored = {s: predictions.score_split(artifacts["examples"], s, serve) for s in features.SPLITS}
        shown = {s: scored[s] for s in ("train", "test")}
        curve_by_split = {s: curves(v.labels, v.probability) for s, v in shown.items()}
        points = operating_points(shown, op["threshold"])
        prevalence = {s: float(v.labels.mean()) for s, v in shown.items()}
        roc = roc_figure(curve_by_split, points, SPLIT_COLORS, "ROC curves (dots: the operating threshold)")
        images["roc"] = save_png(roc, out_dir, "roc")
        pr = pr_figure(
            curve_by_split,
            points,
            SPLIT_COLORS,
            "Precision-recall curves (dots: operating threshold; dotted: fraud rate)",
            prevalence,
        )
        images["precision_recall"] = save_png(pr, out_dir, "precision_recall")
        images["threshold"] = save_png(_fig_threshold(scored["eval"], op), out_dir, "threshold")
        names = separating_features(scored["train"].columns, scored["train"].labels)
        images["feature_distributions"] = save_png(
            _fig_features(scored["train"], names), out_dir, "feature_distributions"
        )
        computed = {
            "curves": {s: {"roc_auc": c["roc_auc"], "ap": c["ap"]} for s, c in curve_by_split.items()},
            "separating_features": names,
            "operating_points": points,
        }
    page = render(summary, images, computed)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w") as f:
        f.write(page)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump({"run_id": summary.get("run_id"), "figures": sorted(images), **computed}, f, indent=2)
    return path
