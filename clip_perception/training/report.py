"""JSON and PNG reports: per-condition accuracy bars and confusion matrices."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

METHOD_TITLES = {"zero_shot": "zero-shot", "head_plain": "head, no augmentation",
                 "head_augmented": "head, with augmentation", "head": "head"}


def write_json(path: str | os.PathLike, report: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=_jsonable))
    return path


def _jsonable(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_png(path: str | os.PathLike, metrics: dict, title: str = "") -> Path:
    """Left: accuracy per lighting condition for every method. Right: one confusion matrix per
    method (rows true, columns predicted, summed over conditions)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on robots/CI; must precede pyplot
    import matplotlib.pyplot as plt

    methods = list(metrics["accuracy"])
    conditions = list(metrics["conditions"]) + ["mean"]
    labels = metrics["labels"]
    fig, axes = plt.subplots(1, 1 + len(methods), figsize=(6 + 3.6 * len(methods), 4.6),
                             gridspec_kw={"width_ratios": [2] + [1] * len(methods)})
    ax = axes[0]
    width = 0.8 / len(methods)
    xs = np.arange(len(conditions))
    for i, m in enumerate(methods):
        vals = [metrics["accuracy"][m][c] for c in conditions]
        bars = ax.bar(xs + (i - (len(methods) - 1) / 2) * width, vals, width,
                      label=METHOD_TITLES.get(m, m))
        ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(xs, [c.replace("_", "\n") for c in conditions], fontsize=8)
    ax.set_ylim(0, 1.35)  # headroom for the legend above the bars
    ax.set_ylabel(f"accuracy ({metrics['n_frames']} validation frames)")
    ax.set_title("accuracy per lighting condition")
    ax.legend(fontsize=7, loc="upper left", ncols=len(methods))
    for ax, m in zip(axes[1:], methods):
        cm = np.asarray(metrics["confusion"][m])
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{METHOD_TITLES.get(m, m)}\n(summed over {len(metrics['conditions'])} "
                     "conditions)", fontsize=9)
        if len(labels) <= 12:
            for (r, c), v in np.ndenumerate(cm):
                ax.text(c, r, str(v), ha="center", va="center", fontsize=6,
                        color="white" if v > cm.max() / 2 else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(metrics: dict) -> str:
    """Plain-text accuracy table for the terminal."""
    conditions = list(metrics["conditions"]) + ["mean"]
    names = list(metrics["accuracy"])
    w = max(len(METHOD_TITLES.get(n, n)) for n in names) + 2
    lines = [" " * w + "".join(f"{c:>16}" for c in conditions)]
    for n in names:
        lines.append(f"{METHOD_TITLES.get(n, n):<{w}}" +
                     "".join(f"{metrics['accuracy'][n][c]:>16.3f}" for c in conditions))
    return "\n".join(lines)
