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

from selfevolve.agents.screens import EXAMPLE  # noqa: E402
from selfevolve.store import RunStore, atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def dev_test_table(title: str, dev: dict[str, float], test: dict[str, float], rows: list[str]):
    """Rich table: each candidate's accuracy on dev (where every choice is made) and on test (read once)."""
    from rich.table import Table

    out = Table(title=title)
    for col in ("candidate", "dev", "test"):
        out.add_column(col, justify="left" if col == "candidate" else "right")
    for k in rows:
        out.add_row(k, f"{dev[k]:.3f}", f"{test[k]:.3f}")
    return out


def accuracy_by_length_table(rounds: list[dict]):
    """Rich table: held-out exact match per length after each self-improvement round, with what each kept."""
    from rich.table import Table

    digits = list(rounds[-1]["accuracy_by_digits"])
    out = Table(title="Held-out exact match by digits, after each round")
    for name in ("round", "kept", "label err"):
        out.add_column(name)
    for d in digits:
        out.add_column(d, justify="right")
    for r in rounds:
        err = "-" if r["pseudo_label_error"] is None else f"{r['pseudo_label_error']:.3f}"
        out.add_row(str(r["round"]), str(r["kept"]), err, *["-" if (a := r["accuracy_by_digits"][d]) is None
                                                           else f"{a:.2f}" for d in digits])
    return out


def plot_accuracy_heatmap(rounds: list[dict], path: Path) -> Path:
    digits = sorted({int(d) for r in rounds for d in r["accuracy_by_digits"]})
    grid = np.array([[np.nan if (a := r["accuracy_by_digits"].get(str(d))) is None else a for d in digits]
                     for r in rounds], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(digits) + 2), 0.45 * len(rounds) + 1.8))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(digits)), [str(d) for d in digits])
    ax.set_yticks(range(len(rounds)), [f"round {r['round']} (<= {r['digits_labelled']})" for r in rounds])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isnan(grid[i, j]):  # no unseen problem of this length
                continue
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


def plot_lines(xs: list, series: dict[str, list], title: str, xlabel: str, ylabel: str, path: Path,
               hline: tuple[float, str] | None = None, logy: bool = False) -> Path:
    """One line per named series over xs; an optional dashed reference line."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, ys in series.items():
        ax.plot(xs, [np.nan if y is None else y for y in ys], marker="o" if len(xs) < 30 else None, ms=3,
                label=name)
    if hline is not None:
        ax.axhline(hline[0], color="grey", ls="--", lw=1, label=hline[1])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_bars(values: dict[str, float], title: str, ylabel: str, path: Path) -> Path:
    """One labelled bar per named value."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bars = ax.bar(list(values), list(values.values()), color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _save(fig, path)


def strategy_table(rounds: list[dict]):
    """A Rich table of `compare_strategies`' accuracy ({strategy: {N: value}}) after each round."""
    from rich.table import Table

    ns = sorted({n for r in rounds for s in r["accuracy"].values() for n in s}, key=int)
    out = Table(title="Held-out accuracy by strategy and number of solutions N, after each round")
    out.add_column("round")
    out.add_column("strategy")
    for n in ns:
        out.add_column(f"N={n}", justify="right")
    for r in rounds:
        for s, by_n in r["accuracy"].items():
            if by_n:
                out.add_row(str(r["round"]), s, *[f"{by_n[n]:.3f}" if n in by_n else "" for n in ns])
    return out


def plot_strategies(rounds: list[dict], plot_dir: Path) -> list[Path]:
    """Each strategy's accuracy per round at the largest N, against N in the last round, and (where the
    rounds record it) greedy accuracy by solution length."""
    last = rounds[-1]["accuracy"]
    top = max((n for s in last.values() for n in s), key=int)
    by_round = {s: [r["accuracy"][s].get(top if s != "greedy" else "1") for r in rounds] for s in last}
    ns = sorted(last["majority"], key=int)
    by_n = {s: [v.get(n) for n in ns] for s, v in last.items() if s != "greedy" and v}
    return [plot_lines([r["round"] for r in rounds], by_round, f"Held-out accuracy per round (N = {top})", "round",
                       "accuracy", plot_dir / "accuracy_by_round.png"),
            plot_lines([int(n) for n in ns], by_n, "Held-out accuracy vs N, final round", "N (solutions / rollouts)",
                       "accuracy", plot_dir / "accuracy_by_n.png")] + _by_steps(rounds, plot_dir)


def _by_steps(rounds: list[dict], plot_dir: Path) -> list[Path]:
    steps = sorted({d for r in rounds for d in r.get("greedy_by_steps", {})}, key=int)
    if not steps:
        return []
    return [plot_lines([int(d) for d in steps], {f"round {r['round']}": [r["greedy_by_steps"].get(d) for d in steps]
                                                 for r in rounds}, "Held-out greedy accuracy by solution length",
                       "steps", "accuracy", plot_dir / "greedy_by_steps.png")]


def plot_rl_steps(rounds: list[dict], plot_dir: Path) -> list[Path]:
    """The policy-gradient statistics of every step: reward, its spread, KL, entropy, length, clipping."""
    steps = [s for r in rounds for s in r.get("rl_steps", [])]
    if not steps:
        return []
    xs = list(range(1, len(steps) + 1))
    return [plot_lines(xs, {"reward mean": [s["reward_mean"] for s in steps],
                            "reward std": [s["reward_std"] for s in steps],
                            "groups with zero variance": [s["zero_variance_groups"] for s in steps]},
                       "Rewards of each step's samples", "step", "value", plot_dir / "rl_reward.png"),
            plot_lines(xs, {name: [s[name] for s in steps] for name in ("kl", "entropy", "clip_fraction")},
                       "KL to the reference, entropy, clipped share", "step", "value", plot_dir / "rl_stats.png"),
            plot_lines(xs, {"completion length (tokens)": [s["completion_length"] for s in steps]},
                       "Completion length", "step", "tokens", plot_dir / "rl_length.png")]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else html.escape(str(value))


def write_report(run_dir: Path) -> Path:
    """Write plots/*.png and report.html for the run in `run_dir`; returns the HTML path."""
    from selfevolve.recipes import get_recipe

    store = RunStore.open(run_dir)
    recipe = get_recipe(store.recipe)
    summary_path = store.path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    plots = recipe.plots(summary, store.path / "plots") if summary else []

    def img(p: Path, css: str = "") -> str:
        return f'<img alt="{p.stem}"{css} src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'

    # an agent's example episode (agents/screens.draw_episode): its screens in order, side by side
    screens = [p for p in plots if p.stem.startswith(EXAMPLE)]
    images = "".join(img(p) for p in plots if p not in screens) + (
        "<h2>An episode, step by step</h2>" + "".join(img(p, ' class="screen"') for p in screens) if screens else "")
    rounds = store.rounds()
    columns = [k for k in (rounds[0] if rounds else {}) if not isinstance(rounds[0][k], dict | list)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rounds)
    headline = recipe.headline(summary) if summary else "run not finished"
    title = html.escape(store.path.name)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>selfevolve: {title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}img{{max-width:100%;margin:1em 0}}
img.screen{{width:240px;margin:4px;vertical-align:top}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(store.recipe)}: {title}</h1><p>{html.escape(headline)}</p>{images}
<h2>Rounds</h2><table><tr>{head}</tr>{rows}</table>
<h2>Config</h2><pre>{html.escape((store.path / "config.toml").read_text())}</pre></body></html>"""
    out = store.path / "report.html"
    atomic_write(out, page)
    return out
