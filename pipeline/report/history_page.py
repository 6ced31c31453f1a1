"""The history page of an output folder: trends across runs (test PR-AUC and recall, the threshold, the largest drift
and skew, rows and frauds), refused and stopped runs marked, rollbacks, and a link to each run's report."""

import html
import os

from matplotlib.ticker import MaxNLocator

from pipeline.report import figures as figs
from pipeline.report.html import CSS, figure, num

HISTORY_DIR = "history"
HISTORY_FILE = "history.html"
_REFUSED = ("not_blessed", "data_rejected", "failed", "killed")


def _trends(runs: list[dict]):
    fig, axes = figs.plt.subplots(2, 2, figsize=(11, 6.5))
    x = list(range(1, len(runs) + 1))
    refused = [i for i, r in enumerate(runs) if r["status"] in _REFUSED]

    def plot(ax, key, label, scale=1.0):
        values = [r.get(key) * scale if r.get(key) is not None else float("nan") for r in runs]
        ax.plot(x, values, marker="o", label=label)
        bad = [(x[i], values[i]) for i in refused if values[i] == values[i]]
        if bad:
            ax.scatter(*zip(*bad), marker="x", s=80, color=figs.FRAUD_COLOR, zorder=3)

    plot(axes[0][0], "test_pr_auc", "test PR-AUC")
    plot(axes[0][0], "recall_at_precision", "recall at the target precision")
    axes[0][0].set_title("Test metrics per run (x: refused or stopped)")
    axes[0][0].set_ylim(0, 1.02)
    plot(axes[0][1], "threshold", "operating threshold")
    axes[0][1].set_title("Operating threshold per run")
    for key, label in (("skew_largest", "largest skew (test vs train) / threshold"),
                       ("drift_largest", "largest drift (newest vs previous span) / threshold")):  # fmt: skip
        values = [r[key]["value"] / r[key]["threshold"] if r.get(key) else float("nan") for r in runs]
        axes[1][0].plot(x, values, marker="o", label=label)
    axes[1][0].axhline(1.0, color="#999", linestyle="--", linewidth=1)
    axes[1][0].set_title("Drift and skew, as a share of the threshold (1 = the gate)")
    axes[1][1].bar(x, [r.get("rows") or 0 for r in runs], color=figs.NORMAL_COLOR, label="rows")
    frauds_axis = axes[1][1].twinx()
    frauds_axis.plot(x, [r.get("frauds") or 0 for r in runs], color=figs.FRAUD_COLOR, marker="o", label="frauds")
    axes[1][1].set_title("Rows (bars) and frauds (line) per run")
    for ax in (axes[0][0], axes[0][1], axes[1][0]):
        ax.legend(fontsize=7)
    for ax in axes.ravel():
        ax.set_xlabel("run")
        # Runs are counted: whole numbers only, and room either side of a lone run.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, len(runs) + 0.5)
    fig.tight_layout()
    return fig


def build(record: dict, out_dir: str) -> str:
    """Writes OUT_DIR/history.html and its figure; returns the page's path."""
    os.makedirs(out_dir, exist_ok=True)
    rows = record["rows"]
    runs = [r for r in rows if r["kind"] == "run"]
    images = {"trends": figs.save_png(_trends(runs), out_dir, "trends")} if runs else {}
    body = []
    for i, r in enumerate(rows):
        if r["kind"] == "rollback":
            body.append(
                f"<tr class='fail'><td>{html.escape(r['at'])}</td><td colspan='7'>rollback by {html.escape(r['by'])} "
                f"from version {html.escape(str(r['from']))} to {html.escape(str(r['to']))} (moved aside: "
                f"{html.escape(', '.join(map(str, r['archived'])))}): "
                f"{html.escape(r.get('reason') or '')}</td></tr>"
            )
            continue
        css = "fail" if r["status"] in _REFUSED else ("pass" if r.get("serving_now") else "")
        link = (
            f"<a href='{html.escape(os.path.relpath(r['report'], out_dir))}'>{html.escape(r['run_id'])}</a>"
            if r.get("report")
            else html.escape(r["run_id"])
        )
        cells = [f"<td>{link}</td>", f"<td>{html.escape(r.get('status') or '')}</td>"]
        for key in ("rows", "frauds", "test_pr_auc", "recall_at_precision", "threshold"):
            cells.append(f"<td>{num(record, 'rows', i, key)}</td>" if key in r else "<td>-</td>")
        version = r.get("pushed_version") or ""
        cells.append(f"<td>{html.escape(version)}{' (serving)' if r.get('serving_now') else ''}</td>")
        body.append(f"<tr class='{css}'>{''.join(cells)}</tr><tr><td colspan='8' class='muted'>"
                    f"{html.escape(r['outcome'])}</td></tr>")  # fmt: skip
    warning = f"<p class='fail'>{html.escape(record['metadata_error'])}</p>" if record.get("metadata_error") else ""
    head = f'<!doctype html><html><head><meta charset="utf-8"><title>History</title><style>{CSS}</style></head>'
    page = f"""{head}<body>
<h1>History of {html.escape(os.path.dirname(record["serving_dir"]))}</h1>
<p>Serving now: version <b>{html.escape(record["serving_now"] or "none")}</b> ({html.escape(record["serving_dir"])}).
{len(runs)} run{"" if len(runs) == 1 else "s"}.</p>{warning}
{figure("trends", images, "Across runs, oldest first; refused, rejected, failed and killed runs are crosses.")}
<h2>Runs and rollbacks</h2>
<table><tr><th>run</th><th>status</th><th>rows</th><th>frauds</th><th>test PR-AUC</th><th>recall at P</th>
<th>threshold</th><th>pushed</th></tr>{"".join(body)}</table>
</body></html>"""
    path = os.path.join(out_dir, HISTORY_FILE)
    with open(path, "w") as f:
        f.write(page)
    return path
