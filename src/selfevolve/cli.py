"""The `selfevolve` command: run, resume, eval, report, export, compare, serve, audit, list."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from selfevolve.config import build_config, config_to_toml, field_docs, load_config
from selfevolve.errors import ConfigError, RunCrashed, SelfEvolveError
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.recipes import RECIPES, get_recipe, with_capability
from selfevolve.store import RunStore

app = typer.Typer(add_completion=False,
                  help="Self-evolving models: generate, judge, select, learn, round after round.")
# logs and pipes get the whole table; no markup: paths and values print as they are ([0, 1] stays)
console = Console(width=None if sys.stdout.isatty() else 200, markup=False)


def _default_out(recipe: Recipe, cfg) -> Path:
    """runs/<recipe>-<what>-s<seed>, with -2, -3 ... appended rather than touching an old run."""
    base = Path("runs") / "-".join(filter(None, (recipe.name, recipe.run_name(cfg), f"s{cfg.seed}")))
    out, n = base, 1
    while out.exists() and any(out.iterdir()):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _execute(store: RunStore, cfg) -> None:
    from selfevolve.report import write_report

    recipe = get_recipe(store.recipe)
    console.print(Text.assemble((store.recipe, "bold"), f" -> {store.path}"))
    try:
        with Progress(enabled=True) as progress:
            summary = recipe.run(cfg, store, progress)
    except SelfEvolveError:
        raise
    except Exception as err:  # a bug, a full disk, a lost file: the run stays resumable
        log = _write_log(store.path / "error.log", err)
        with contextlib.suppress(sqlite3.Error):
            store.event("error", f"{type(err).__name__}: {err}")
        raise RunCrashed(f"{type(err).__name__}: {err} (at {_where(err)}); {log}; "
                         f"`selfevolve resume {store.path}` continues from the last finished round") from None
    if recipe.table is not None:
        console.print(recipe.table(summary))
    console.print(recipe.headline(summary))
    console.print(f"report: {write_report(store.path)}")


@app.command()
def run(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `selfevolve list`).")],
    config: Annotated[Path | None, typer.Option("--config", help="TOML file with config values.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one value: key=value.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<recipe>-<task>-s<seed>).")
                   ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out.")] = False,
) -> None:
    """Start a new run of RECIPE."""
    spec = get_recipe(recipe)
    cfg = load_config(spec.Config, config, set_ or [])
    store = RunStore.create(out or _default_out(spec, cfg), recipe, config_to_toml(cfg), overwrite=overwrite)
    _execute(store, cfg)


@app.command()
def resume(run_dir: Annotated[Path, typer.Argument(help="Run directory to continue.")]) -> None:
    """Continue a run from its last complete round; the result equals an uninterrupted run."""
    store = RunStore.open(run_dir)
    cfg = build_config(get_recipe(store.recipe).Config, store.config_values())
    _execute(store, cfg)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    max_digits: Annotated[int | None, typer.Option(help="Evaluate 1..N digits (default: the run's range).")] = None,
    problems: Annotated[int | None, typer.Option(help="Held-out problems per length.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSONL problems in the task's fields (STaR-family "
                                              "runs): prints accuracy and writes a verdict per problem.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where --file writes its verdicts (default "
                                             "DIR/eval/<file name>.jsonl).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Runs with several answer strategies: how --file picks one: "
                                                 "greedy, majority, orm, prm, ppm or mcts_ppm (default ppm).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="With --strategy: solutions (or MCTS rollouts) per problem "
                                          "for --strategy (default 16).")] = None,
) -> None:
    """Evaluate a run's latest checkpoint on held-out problems, or on your own (--file)."""
    store = RunStore.open(run_dir)
    if store.last_checkpoint() is None:
        raise SelfEvolveError(f"{run_dir} has no finished round to evaluate yet")
    recipe = get_recipe(store.recipe)
    cfg = build_config(recipe.Config, store.config_values())
    if file is not None:
        _eval_file(store, recipe, cfg, file, out or store.path / "eval" / f"{file.stem}.jsonl", strategy, n)
        return
    if strategy is not None or n is not None:
        raise SelfEvolveError("--strategy and --n choose how --file problems are answered; pass --file too")
    if recipe.evaluate is None:
        raise SelfEvolveError(f"eval without --file scores runs of {', '.join(with_capability('evaluate'))}; "
                              f"{run_dir} is a {store.recipe} run (its summary.json and report hold its evaluation; "
                              "pass --file to score your problems)")
    title, scores = recipe.evaluate(store, cfg, max_digits=max_digits, problems=problems)
    table = Table(title=title)
    for column in scores:
        table.add_column(column, justify="right")
    table.add_row(*["-" if v is None else f"{v:.2f}" for v in scores.values()])  # "-": no unseen problem
    console.print(table)


def _eval_file(store: RunStore, recipe: Recipe, cfg, file: Path, out: Path, strategy: str | None,
               n: int | None) -> None:
    import json

    from selfevolve.store import atomic_write
    from selfevolve.tasks import get_task, read_problems

    if recipe.evaluate_file is None:
        raise SelfEvolveError(f"eval --file reads runs of {', '.join(with_capability('evaluate_file'))}; "
                              f"{store.path} is a {store.recipe} run")
    try:
        problems = read_problems(file, get_task(cfg.task))
    except ValueError as err:
        raise SelfEvolveError(str(err)) from None
    result = recipe.evaluate_file(store, cfg, problems, strategy, n)
    verdicts = result["verdicts"]
    rows = [dict(zip(verdicts, values, strict=True)) for values in zip(*verdicts.values(), strict=True)]
    atomic_write(out, "".join(json.dumps(row) + "\n" for row in rows))
    table = Table(title=f"{store.last_checkpoint().name} on {file}")
    table.add_column("problems", justify="right")
    for name in result["metrics"]:
        table.add_column(name, justify="right")
    table.add_row(str(len(problems)), *[f"{v:.3f}" for v in result["metrics"].values()])
    console.print(table)
    console.print(f"verdicts: {out}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Write plots/*.png and report.html for a run."""
    from selfevolve.report import write_report

    console.print(f"report: {write_report(run_dir)}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    hf: Annotated[Path, typer.Option("--hf", help="Output Hugging Face model directory.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")] = False,
) -> None:
    """Export the latest checkpoint as a Hugging Face model directory."""
    store = RunStore.open(run_dir)
    recipe = get_recipe(store.recipe)
    if recipe.export is None:
        raise SelfEvolveError(f"export --hf writes the language models of {', '.join(with_capability('export'))} "
                              f"runs; {run_dir} is a {store.recipe} run")
    cfg = build_config(recipe.Config, store.config_values())  # each export says when there is nothing to export yet
    console.print(f"exported to {recipe.export(store, cfg, hf, overwrite)}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished runs of one family (e.g. star, bstar, dpo, upo).")],
    plot: Annotated[Path, typer.Option("--plot", help="Where to write the learning-curve plot.")] = Path(
        "compare.png"),
) -> None:
    """Side by side: each run's headline figures (held-out pass@1 for the STaR family) and learning curves."""
    from selfevolve.report import plot_lines
    from selfevolve.store import read_json

    rows = []
    for run_dir in run_dirs:
        store = RunStore.open(run_dir)
        recipe = get_recipe(store.recipe)
        if recipe.compare is None:
            raise SelfEvolveError(f"compare reads runs of {', '.join(with_capability('compare'))}; {run_dir} is "
                                  f"a {store.recipe} run")
        if not (store.path / "summary.json").exists():
            raise SelfEvolveError(f"{run_dir} has not finished (no summary.json)")
        rows.append((run_dir, store.recipe, *recipe.compare(read_json(store.path / "summary.json", "run summary"))))
    columns = list(rows[0][2])
    for run_dir, name, row, _ in rows:
        if list(row) != columns:
            raise SelfEvolveError(f"{run_dir} ({name}) reports other figures than {rows[0][0]}; compare runs of "
                                  "one family")
    table = Table(title="Side by side")
    for name in ("run", "recipe", *columns):
        table.add_column(name, justify="left" if name in ("run", "recipe") else "right")
    for run_dir, name, row, _ in rows:
        table.add_row(str(run_dir), name, *row.values())
    console.print(table)
    longest = max(len(curve) for *_, curve in rows)
    curves = {f"{d.name} ({name})": curve + [None] * (longest - len(curve)) for d, name, _, curve in rows}
    out = plot_lines(list(range(longest)), curves, "Held-out score per iteration", "iteration", "score", plot)
    console.print(f"plot: {out}")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="A run directory (its latest checkpoint), a Hugging Face model "
                                              "directory, or smollm2.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    name: Annotated[str | None, typer.Option(help="Model id clients ask for (default: the directory name).")] = None,
    max_batch: Annotated[int, typer.Option(help="Most sequences generated together.")] = 64,
    max_context: Annotated[int, typer.Option(help="Prompt + max_tokens limit for models without a fixed context "
                                                  "(a RoPE model keeps its own).")] = 4096,
    prefill_chunk: Annotated[int, typer.Option(help="Prompt positions read per step, so a long prompt never "
                                                    "holds other requests up (0: the whole prompt at once).")] = 64,
) -> None:
    """Serve a model with an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions)."""
    if not 1 <= port <= 65535:
        raise SelfEvolveError(f"--port must be in 1..65535, got {port}")
    for option, value, least in (("--max-batch", max_batch, 1), ("--max-context", max_context, 1),
                                 ("--prefill-chunk", prefill_chunk, 0)):
        if value < least:
            raise SelfEvolveError(f"{option} must be >= {least}, got {value}")
    from selfevolve.models.hf import SERVE_EXTRAS, require
    from selfevolve.models.lm import TransformerLM

    for module in ("fastapi", "uvicorn"):
        require(module, SERVE_EXTRAS)
    from selfevolve.serve import serve as start

    path = Path(model)
    load = TransformerLM.from_run if (path / "run.sqlite").exists() else TransformerLM.from_pretrained
    lm = load(model, max_context=max_context)
    console.print(f"serving {name or path.name} on http://{host}:{port}/v1 (context {lm.max_len} tokens)")
    start(lm, name or path.name, host, port, max_batch, prefill_chunk)


@app.command()
def audit(
    model: Annotated[str, typer.Argument(help="smollm2, a local Hugging Face Llama directory, a run directory "
                                              "(its reward models are audited as judges), or with --base-url the "
                                              "server's model name.")],
    base_url: Annotated[str, typer.Option(help="An OpenAI-compatible server that echoes log-probabilities "
                                               "(e.g. http://127.0.0.1:8000/v1).")] = "",
    inventory: Annotated[Path | None, typer.Option(help="Your own inventory: a TSV of item, trait, key (+/-).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the full report here as JSON.")] = None,
    rounds: Annotated[int, typer.Option(help="Permutations per test.")] = 10_000,
    problems: Annotated[int, typer.Option(help="A run's judges: fresh problems its policy answers.")] = 50,
    samples: Annotated[int, typer.Option(help="A run's judges: answers sampled per problem.")] = 8,
) -> None:
    """Ask a model a Big Five inventory under three wordings and both option orders; report each trait's
    score per condition and the permutation-test p-value against the first. Given a run directory: audit
    the reward models it holds as judges (agreement with the verifier, invariance under paraphrase)."""
    import json

    if not base_url and (Path(model) / "run.sqlite").exists():
        _audit_judges(Path(model), out, problems, samples)
        return
    from selfevolve.audit import audit as run_audit
    from selfevolve.audit import endpoint_options, load_inventory, next_token_options
    from selfevolve.store import atomic_write

    try:
        items = load_inventory(inventory)
    except (OSError, ValueError) as err:
        raise ConfigError(str(err)) from None
    if rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {rounds}")
    if base_url:
        from selfevolve.models.lm import OpenAILM

        options = endpoint_options(OpenAILM(base_url, model))
    else:
        from selfevolve.models.hf import load

        options = next_token_options(*load(model))
    report = run_audit(options, items, rounds)
    table = Table(title=f"{model}: trait score (1-5) per wording and option order; p against {report['base']}")
    conditions = list(next(iter(report["traits"].values())))
    table.add_column("trait")
    for c in conditions:
        table.add_column(c, justify="right")
    for trait, row in report["traits"].items():
        table.add_row(trait, *(f"{row[c]['score']:.2f}" + ("" if row[c]["p_vs_base"] is None
                                                            else f" (p {row[c]['p_vs_base']:.3f})")
                               for c in conditions))
    console.print(table)
    items_table = Table(title="over all items: correlation of item scores with the first condition's, and the mean "
                              "option number answered (3 = no position bias)")
    for column in ("condition", "r", "mean option"):
        items_table.add_column(column, justify="right")
    for c, row in report["conditions"].items():
        items_table.add_row(c, f"{row['r_vs_base']:.2f}", f"{row['mean_option_number']:.2f}")
    console.print(items_table)
    if out is not None:
        atomic_write(out, json.dumps({"model": model, "base_url": base_url or None, **report}, indent=2) + "\n")


def _audit_judges(run_dir: Path, out: Path | None, problems: int, samples: int) -> None:
    """The reward models of a run, judged: agreement with the verifier and invariance under paraphrase."""
    import json

    import numpy as np

    from selfevolve.judge.invariance import judge_report
    from selfevolve.judge.reward import load_process_models
    from selfevolve.rng import rngs
    from selfevolve.store import atomic_write
    from selfevolve.tasks import get_task

    if problems < 1 or samples < 2:
        raise ConfigError(f"--problems must be >= 1 and --samples >= 2, got {problems}, {samples}")
    store = RunStore.open(run_dir)
    recipe = get_recipe(store.recipe)
    cfg = build_config(recipe.Config, store.config_values())
    policy = recipe.policy(cfg) if recipe.policy else None
    judges = load_process_models(store.finished_checkpoint(), policy.model) if policy else {}
    if not judges:
        raise SelfEvolveError(f"{run_dir} holds no reward model to audit (rstar after a search round, or a "
                              "STaR-family run with judge=orm)")
    store.load_last(policy.model)
    task = cfg.make_task() if hasattr(cfg, "make_task") else get_task(cfg.task)
    difficulty = getattr(cfg, "eval_difficulty", None) or cfg.difficulty
    streams = rngs(getattr(cfg, "seed", 0), "audit")
    report = judge_report(policy, judges, task, task.sample(problems, difficulty, streams.np, mixed=True), samples,
                          getattr(cfg, "temperature", 1.0), streams.torch, np.random.default_rng(0))
    table = Table(title=f"{run_dir}: {report['paraphrased']} of {report['answers']} answers paraphrased "
                        f"({report['right_share']:.0%} right); position bias: {report['position_bias']}")
    for column in ("judge", "AUC", "AUC paraphrased", "mean |change|", "change / spread", "flipped pairs"):
        table.add_column(column, justify="right")
    for name, row in report["judges"].items():
        table.add_row(name, *("-" if row[k] is None else f"{row[k]:.3f}" for k in (
            "auc", "auc_paraphrased", "mean_abs_change", "change_over_spread", "flipped_pairs")))
    console.print(table)
    if out is not None:
        atomic_write(out, json.dumps({"run": str(run_dir), **report}, indent=2) + "\n")


@app.command("list")
def list_() -> None:
    """List recipes (with their config keys and defaults) and tasks."""
    from selfevolve.tasks import TASKS

    for name in sorted(RECIPES):
        recipe = get_recipe(name)
        console.print(Text.assemble((f"recipe {name}", "bold"), f": {recipe.doc.splitlines()[0]}"))
        docs = field_docs(recipe.Config)
        defaults = recipe.Config()
        for key, doc in docs.items():
            console.print(Text.assemble(f"  {key} = {getattr(defaults, key)!r}  ", (doc, "dim")))
    console.print(Text.assemble(("tasks", "bold"), f": {', '.join(sorted(TASKS))}"))


def _fail(message: str, code: int) -> None:
    """One line on stderr, user values printed as they are (no Rich markup), then exit."""
    Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "red"), message))
    sys.exit(code)


def _write_log(path: Path, err: BaseException) -> str:
    """Save the traceback; says where, or why it could not (a full disk is one reason runs stop)."""
    from selfevolve.store import atomic_write

    try:
        atomic_write(path, "".join(traceback.format_exception(err)))
    except OSError as why:
        return f"the traceback could not be saved ({why.strerror or why})"
    return f"the traceback is in {path}"


def _where(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def main() -> None:
    try:
        app(standalone_mode=False)
    except SelfEvolveError as err:
        _fail(str(err), err.exit_code)
    except typer.TyperException as err:  # usage errors (Typer >= 0.29 bundles its own click): one line
        ctx = getattr(err, "ctx", None)
        _fail(f"{err.format_message().rstrip('.')}; `{ctx.command_path if ctx else 'selfevolve'} --help` shows the "
              "usage", 2)
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("aborted; `selfevolve resume DIR` continues from the last finished round")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as err:  # a bug of ours outside a run: one line, the traceback in a file
        fd, name = tempfile.mkstemp(prefix="selfevolve-error-", suffix=".log")
        os.close(fd)
        _fail(f"{type(err).__name__}: {err} (at {_where(err)}); {_write_log(Path(name), err)}", 1)
