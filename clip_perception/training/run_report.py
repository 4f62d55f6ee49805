"""JSON and PNG reports: per-condition accuracy bars (real and synthetic conditions apart) and
confusion matrices, and the terminal summary of a training run."""
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


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on robots/CI; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _confusion(ax, cm, labels, title: str) -> None:
    cm = np.asarray(cm)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if len(labels) <= 12:
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=6,
                    color="white" if v > cm.max() / 2 else "black")


def _bars(ax, groups: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> None:
    xs = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        bars = ax.bar(xs + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(xs, [g.replace("_", "\n") for g in groups], fontsize=8)
    ax.set_ylim(0, 1.35)  # headroom for the legend above the bars
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncols=max(1, len(series)))


def write_png(path: str | os.PathLike, report: dict) -> Path:
    """A training report: test accuracy per real condition (with the leave-one-condition-out
    head where there is one), per synthetic condition, and the test confusion matrices."""
    plt = _plt()
    per = report["verdict"]["per_condition"]
    real = [c for c, v in per.items() if v["kind"] == "real"]
    synthetic = [c for c, v in per.items() if v["kind"] == "synthetic"]
    labels = report["labels"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8), gridspec_kw={"width_ratios": [1.3, 1.6, 1, 1]})
    series = {"zero-shot": [per[c]["zero_shot"] for c in real],
              "head": [per[c]["head"] for c in real]}
    loco = report.get("leave_one_condition_out") or {}
    if any("head" in loco.get(c, {}) for c in real):
        series["head trained without it (all its frames)"] = [loco.get(c, {}).get("head", 0.0)
                                                              for c in real]
    _bars(axes[0], real, series, "real conditions (test takes)", "class-balanced accuracy")
    _bars(axes[1], synthetic, {"zero-shot": [per[c]["zero_shot"] for c in synthetic],
                               "head": [per[c]["head"] for c in synthetic]},
          "synthetic conditions (test frames, transformed)", "class-balanced accuracy")
    conf = report["test"]["confusion"]
    n = int(np.asarray(conf["head"]).sum())
    _confusion(axes[2], conf["zero_shot"], labels, f"zero-shot, test ({n} frames)")
    chosen = report["selection"]["chosen"]
    _confusion(axes[3], conf["head"], labels,
               f"{METHOD_TITLES.get(chosen['variant'], chosen['variant'])}, blend "
               f"{chosen['blend']:g}, test")
    v = report["verdict"]
    fig.suptitle(f"{report['model_identifier']} ({report['encoder']['backend']}, "
                 f"{report['encoder']['precision']}) — {'written' if v['written'] else 'NOT written'}: "
                 f"gain {v['gain']:+.1f} points, 95 % lower bound {v['gain_ci_low']:+.1f}"
                 + (" — OPTIMISTIC (takes cut)" if report.get("optimistic") else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def format_summary(report: dict) -> str:
    """The terminal summary of a training run: subsets, choice, conditions, verdict."""
    d = report["split_details"]
    lines = ["takes per label: " + "; ".join(f"{s} {d['takes_per_label'][s]}" for s in d["frames"]),
             "frames: " + ", ".join(f"{s} {n}" for s, n in d["frames"].items())
             + f" ({d['dropped_at_gap']} training frames dropped within {d['gap_seconds']} s "
               "of held-out takes)"]
    c = report["selection"]["chosen"]
    lines.append(f"validation chose {c['variant']} at blend {c['blend']:g} (balanced accuracy "
                 f"{c['val_balanced_accuracy']:.3f}, epoch {c['best_epoch']})")
    lines.append(f"{'test condition':<22}{'kind':>10}{'frames':>8}{'zero-shot':>11}{'head':>8}"
                 f"{'change':>9}")
    for name, v in report["verdict"]["per_condition"].items():
        lines.append(f"{name:<22}{v['kind']:>10}{v['n_frames']:>8}{v['zero_shot']:>11.3f}"
                     f"{v['head']:>8.3f}{v['change']:>+9.1f}")
    for name, v in (report.get("leave_one_condition_out") or {}).items():
        if "skipped" in v:
            lines.append(f"leave out '{name}': skipped, {v['skipped']}")
        else:
            lines.append(f"leave out '{name}': trained on {v['trained_on']}, on all "
                         f"{v['n_test_frames']} '{name}' frames zero-shot {v['zero_shot']:.3f}, "
                         f"head {v['head']:.3f} ({v['gain']:+.1f} points)")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    lines.append(report["verdict"]["reason"])
    return "\n".join(lines)


def write_metrics_png(path: str | os.PathLike, metrics: dict, title: str = "") -> Path:
    """Left: accuracy per lighting condition for every method. Right: one confusion matrix per
    method (rows true, columns predicted, summed over conditions)."""
    plt = _plt()
    methods = list(metrics["accuracy"])
    conditions = list(metrics["conditions"]) + ["mean"]
    fig, axes = plt.subplots(1, 1 + len(methods), figsize=(6 + 3.6 * len(methods), 4.6),
                             gridspec_kw={"width_ratios": [2] + [1] * len(methods)})
    _bars(axes[0], conditions, {METHOD_TITLES.get(m, m): [metrics["accuracy"][m][c] for c in conditions]
                                for m in methods},
          "accuracy per lighting condition", f"accuracy ({metrics['n_frames']} frames)")
    for ax, m in zip(axes[1:], methods):
        _confusion(ax, metrics["confusion"][m], metrics["labels"],
                   f"{METHOD_TITLES.get(m, m)}\n(summed over {len(metrics['conditions'])} conditions)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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
