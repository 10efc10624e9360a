"""The run report: the stage table in markdown plus PNG plots (training curves, confusion matrix,
beta sweep), written next to the eval metrics."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from relmodel import storage
from relmodel.labels import GRADES

REPORT_FILE = "report.md"


def stage_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: macro-F1, accuracy, per-class F1 for argmax and CumPT."""
    table = []
    for name, row in report["rows"].items():
        for rule in ("argmax", "cumpt"):
            metrics = row[rule]
            table.append({
                "stage": name,
                "rule": rule if rule == "argmax" else f"CumPT β={row['beta']:.2f}",
                "macro_f1": metrics["macro_f1"],
                "accuracy": metrics["accuracy"],
                **{f"f1_{int(g)}": metrics["per_class"][str(int(g))]["f1"] for g in GRADES},
            })
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    head = "| stage | rule | macro-F1 | acc | F1 1 | F1 2 | F1 3 | F1 4 |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['stage']} | {r['rule']} | {100 * r['macro_f1']:.2f} | {100 * r['accuracy']:.2f} | "
        + " | ".join(f"{100 * r[f'f1_{int(g)}']:.2f}" for g in GRADES) + " |\n"
        for r in table
    )
    return head + body


def write_report(output: str, report: dict[str, Any]) -> None:
    plots = {
        "beta_sweep.png": _beta_sweep(report),
        "confusion.png": _confusion(report),
        "training_curves.png": _training_curves(report),
    }
    for name, png in plots.items():
        if png is not None:
            with storage.atomic_write(storage.join(output, name), "wb") as handle:
                handle.write(png)
    served = report["rows"][report["serve_row"]]
    lines = [
        "# relmodel run report",
        "",
        f"Evaluated on {report['eval_pairs']} pairs. Served model: **{report['serve_row']}** "
        f"(`{report['serve_model']}`), CumPT β = {report['beta']:.2f}, "
        f"macro-F1 {100 * report['macro_f1']:.2f} (argmax {100 * report['argmax_macro_f1']:.2f}).",
        "",
        "## Stage table",
        "",
        markdown_table(stage_table(report)),
        "## CumPT macro-F1 by query type (served model)",
        "",
        "| query type | macro-F1 |\n|---|---|",
        *(f"| {t} | {100 * f1:.2f} |" for t, f1 in served["cumpt_macro_f1_by_query_type"].items()),
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})" for name, png in plots.items() if png is not None),
        "",
        "## Lineage",
        "",
        f"- data: `{report['lineage']['data']}`",
        *(f"  - `{name}` sha256 `{digest[:16]}…`" for name, digest in report["lineage"]["data_sha256"].items()),
        *(f"- {row}: `{uri}`" for row, uri in report["lineage"]["models"].items()),
        "",
    ]
    storage.write_text(storage.join(output, REPORT_FILE), "\n".join(lines))


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _beta_sweep(report: dict[str, Any]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in report["rows"].items():
        betas, f1s = zip(*row["beta_sweep"], strict=True)
        ax.plot(betas, f1s, marker="o", label=name)
    ax.axvline(report["beta"], color="grey", linestyle="--", label=f"β in force ({report['beta']:.2f})")
    ax.set(xlabel="CumPT β", ylabel="macro-F1", title="CumPT β sweep on the eval split")
    ax.legend()
    return _png(fig)


def _confusion(report: dict[str, Any]) -> bytes:
    served = report["rows"][report["serve_row"]]["cumpt"]["confusion"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(served, cmap="Blues")
    for i, row in enumerate(served):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    ticks = [g.label for g in GRADES]
    ax.set_xticks(range(4), ticks, rotation=30)
    ax.set_yticks(range(4), ticks)
    ax.set(xlabel="predicted (CumPT)", ylabel="gold", title=f"Confusion: {report['serve_row']}")
    return _png(fig)


def _training_curves(report: dict[str, Any]) -> bytes | None:
    """One panel per stage: the loss of SFT/DPO, the mean reward of GRPO."""
    curves = []
    for name, row in report["rows"].items():
        for key, label in (("loss_curve", "loss"), ("reward_curve", "mean reward")):
            if row["training"].get(key):
                curves.append((name, label, row["training"][key]))
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.5), squeeze=False)
    for ax, (name, label, curve) in zip(axes[0], curves, strict=True):
        steps, values = zip(*curve, strict=True)
        ax.plot(steps, values)
        ax.set(title=name, xlabel="step", ylabel=label)
    return _png(fig)
