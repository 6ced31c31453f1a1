"""The reports' figures (matplotlib, Agg backend), and how a figure is saved as a PNG and embedded."""

import base64
import io
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first.
import numpy as np  # noqa: E402

import contract  # noqa: E402
from trainer import threshold as threshold_lib  # noqa: E402
from trainer.hparams import ThresholdPolicy  # noqa: E402

NORMAL_COLOR, FRAUD_COLOR = "#4c72b0", "#dd5144"
SPLIT_COLORS = {"train": "#4c72b0", "eval": "#55a868", "test": "#dd8452"}
HISTORY_METRICS = (
    ("loss", "loss"),
    ("prc", "PR-AUC"),
    ("auc", "ROC-AUC"),
    ("precision", "precision (at 0.5)"),
    ("recall", "recall (at 0.5)"),
)


def class_balance_figure(summary):
    splits = summary["splits"]
    names = [s for s in contract.SPLITS if s in splits]
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


def history_figure(history: dict, best_epoch: int):
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


def confusion_figure(counts: dict, threshold: float):
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


def threshold_figure(eval_scored, operating: dict):
    """Precision and recall (and the cost, for the cost policy) against the threshold on the eval split."""
    pr = threshold_lib.precision_recall(eval_scored.labels, eval_scored.probability)
    keep = pr.flagged > 0
    cuts = pr.cuts[keep]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step(cuts, pr.precision[keep], where="post", color="#8172b2", label="precision")
    ax.step(cuts, pr.recall[keep], where="post", color="#55a868", label="recall")
    chosen = operating["threshold"]
    ax.axvline(chosen, color="k", linewidth=1, label=f"operating threshold {chosen:.4f}")
    policy = ThresholdPolicy.from_dict(operating["policy"])
    if policy.kind == "precision":
        if policy.confidence_z > 0:
            lower = threshold_lib.precision_lower_bound(pr.tp[keep], pr.flagged[keep], policy.confidence_z)
            label = f"precision's lower bound (Wilson, z = {policy.confidence_z:g})"
            ax.step(cuts, lower, where="post", color="#8172b2", linestyle="--", linewidth=0.9, label=label)
        ax.axhline(policy.min_precision, color="#8172b2", linewidth=0.8, linestyle=":", label="precision target")
    ax.set_xscale("log")
    ax.set_xlabel("threshold on the fraud probability (log scale)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if policy.kind == "cost":
        cost = policy.fn_cost * (pr.positives - pr.tp[keep]) + policy.fp_cost * pr.fp[keep]
        twin = ax.twinx()
        twin.step(cuts, cost, where="post", color="#c44e52", linestyle="--", label="expected cost")
        twin.set_ylabel("expected cost on eval")
        twin.legend(loc="center right", fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Eval split: where the operating threshold was chosen", fontsize=10)
    fig.tight_layout()
    return fig


def slices_figure(slices: dict):
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


def features_figure(train_scored, names: list[str], logged=((contract.AMOUNT, contract.AMOUNT_LOG_OFFSET),)):
    """Histograms of frauds and normal rows for the named features, and log(x + offset) of each (name, offset) in
    logged (missing values left out)."""
    columns = dict(train_scored.columns)
    for name, offset in logged:
        columns[f"log {name}"] = np.log(columns[name] + offset)
    shown = names + [f"log {name}" for name, _ in logged]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.4), squeeze=False)
    for ax, name in zip(axes[0], shown):
        x = columns[name]
        fraud = train_scored.labels.astype(bool)
        present = ~np.isnan(x)
        if not present.all():
            x, fraud = x[present], fraud[present]
        low, high = np.percentile(x, [0.5, 99.5])
        low, high = min(low, np.percentile(x[fraud], 1)), max(high, np.percentile(x[fraud], 99))
        bins = np.linspace(low, high, 50)
        ax.hist(x[~fraud], bins=bins, density=True, alpha=0.6, color=NORMAL_COLOR, label="normal")
        ax.hist(x[fraud], bins=bins, density=True, alpha=0.6, color=FRAUD_COLOR, label="fraud")
        ax.set_title(name)
        ax.set_yticks([])
    axes[0][0].legend()
    fig.suptitle("Train split: feature distributions of frauds and normal transactions (each scaled to 1)", fontsize=10)
    fig.tight_layout()
    return fig


def drift_figure(comparisons: list[dict], columns=contract.RAW_COLUMNS):
    """Per comparison, each feature's divergence (bars; red past its threshold) and its threshold (black ticks),
    in the order of the dataset's columns."""
    order = {name: i for i, name in enumerate(columns)}
    fig, axes = plt.subplots(1, len(comparisons), figsize=(6.5 * len(comparisons), 7.5), squeeze=False)
    for ax, comparison in zip(axes[0], comparisons):
        features = sorted(
            (f for f in comparison["features"] if f["value"] is not None),
            key=lambda f: order.get(f["feature"], len(order)),
        )
        y = np.arange(len(features))
        colors = [FRAUD_COLOR if f["exceeded"] else NORMAL_COLOR for f in features]
        ax.barh(y, [f["value"] for f in features], color=colors)
        ax.scatter([f["threshold"] for f in features], y, marker="|", s=200, color="black", label="threshold")
        labels = [f"{f['feature']} ({'L-inf' if f['measure'] == 'l_infinity' else 'JSD'})" for f in features]
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("divergence (JSD: Jensen-Shannon; L-inf: largest change in a class's share)")
        ax.set_title(comparison["name"], fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Drift and skew per feature (red: past its threshold)", fontsize=10)
    fig.tight_layout()
    return fig


def save_png(fig, out_dir: str, name: str) -> str:
    """Writes the figure to OUT_DIR/NAME.png, closes it, and returns the PNG as base64 for embedding."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = buffer.getvalue()
    with open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
        f.write(data)
    return base64.b64encode(data).decode()
