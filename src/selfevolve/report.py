"""PNG plots and one self-contained HTML page for a run directory."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from selfevolve.store import RunStore, atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_accuracy_heatmap(rounds: list[dict], path: Path) -> Path:
    digits = sorted({int(d) for r in rounds for d in r["accuracy_by_digits"]})
    grid = np.array([[r["accuracy_by_digits"].get(str(d), np.nan) for d in digits] for r in rounds])
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(digits) + 2), 0.45 * len(rounds) + 1.8))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(digits)), [str(d) for d in digits])
    ax.set_yticks(range(len(rounds)), [f"round {r['round']} (<= {r['digits_labelled']})" for r in rounds])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}".lstrip("0") if grid[i, j] < 1 else "1", ha="center",
                    va="center", fontsize=7, color="white" if grid[i, j] < 0.6 else "black")
    labelled = rounds[0]["digits_labelled"]
    ax.axvline(digits.index(labelled) + 0.5 if labelled in digits else -0.5, color="white", ls="--", lw=1.5)
    ax.set_xlabel(f"digits per operand (held-out); labels exist left of the dashed line (<= {labelled})")
    ax.set_title("Held-out exact match after each round")
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _save(fig, path)


def plot_pseudo_labels(rounds: list[dict], path: Path) -> Path:
    later = [r for r in rounds if r["round"] > 0]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = [r["round"] for r in later]
    ax.bar(xs, [r["kept"] for r in later], color="#9ecae1", label="kept self-labels")
    ax.set_xlabel("round")
    ax.set_ylabel("kept self-labels")
    ax2 = ax.twinx()
    errors = [np.nan if r["pseudo_label_error"] is None else r["pseudo_label_error"] for r in later]
    ax2.plot(xs, errors, "o-", color="#d62728", label="error among kept")
    ax2.set_ylabel("error among kept", color="#d62728")
    ax2.set_ylim(0, max(0.05, np.nanmax(errors) * 1.2) if later and not np.all(np.isnan(errors)) else 1)
    ax.set_title("Self-labels kept by the filters, and how many were wrong")
    return _save(fig, path)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def write_report(run_dir: Path) -> Path:
    """Write plots/*.png and report.html for the run in `run_dir`; returns the HTML path."""
    store = RunStore.open(run_dir)
    rounds = store.rounds()
    plots = []
    if rounds:
        plots.append(plot_accuracy_heatmap(rounds, store.path / "plots" / "accuracy_by_digits.png"))
        if len(rounds) > 1:
            plots.append(plot_pseudo_labels(rounds, store.path / "plots" / "pseudo_labels.png"))
    summary_path = store.path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    images = "".join(
        f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in plots)
    rows = "".join(
        f"<tr><td>{r['round']}</td><td>{r['digits_labelled']}</td><td>{r['kept']}</td>"
        f"<td>{_fmt(r['pseudo_label_error'])}</td><td>{r['wall_seconds']:.1f}</td></tr>" for r in rounds)
    headline = (f"reached {summary['reached_digits']} digits (>= 90% exact match), labels up to "
                f"{summary['trained_max_digits']}, {summary['wall_seconds']:.0f} s" if summary else "run not finished")
    title = html.escape(store.path.name)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>selfevolve: {title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}img{{max-width:100%;margin:1em 0}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(store.recipe)}: {title}</h1><p>{html.escape(headline)}</p>{images}
<h2>Rounds</h2><table><tr><th>round</th><th>max digits trained</th><th>kept</th><th>label error</th>
<th>seconds</th></tr>{rows}</table>
<h2>Config</h2><pre>{html.escape((store.path / "config.toml").read_text())}</pre></body></html>"""
    out = store.path / "report.html"
    atomic_write(out, page)
    return out
