"""Our GRPO trainer against TRL's GRPOTrainer: the same model, prompts and settings, in one process run.

    python bench/grpo_vs_trl.py [--seeds 0-9] [--steps 30] [--prompts 8] [--group 8] [--new 12] [--native]

A 4 x 128 transformer with our character tokenizer is fine-tuned on Countdown (round 0, about a
third of held-out problems right) and exported as a Llama with its tokenizer; both trainers then
load that directory and run the same number of GRPO steps on the same prompts: group-normalised
advantages, sequence-mean loss, clip 0.2, one update per batch, the same beta (KL), learning
rate, temperature 1 and completion length, reward 1 for a correct answer, AdamW with the same
betas (TRL's fused, ours not); TRL without its default gradient checkpointing (a memory saving that
only costs time at this size). Each prints completions per second of the RL steps (loading
excluded), the mean reward of every step, and the greedy pass@1 of its final model on held-out
problems (none of them a training prompt, answered by the same greedy decoder) beside round 0's;
ours runs twice, with each group's prompt read once in training (the default) and once per
completion (`share_prompts=false`). The three runs are repeated `--repeats` times in turn (ours,
unshared, TRL, ours, ...): this machine's speed drifts by 20% and more within minutes, so each rate
is the median over repeats and the speedup the median of each repeat's TRL / ours time, a pair run
seconds apart; every repeat must give the same rewards (recorded). A last line sums up the seeds:
the speedup's median and range, the mean held-out pass@1 of round 0, ours and TRL's, and the
paired differences ours - TRL (same seed) of the mean training reward over all steps, of the last
five steps' and of held-out pass@1, each with a bootstrap 95% interval over seeds and the seeds
ours is above, level or below. With --native, ours runs with `native=true` (models/native.py): sampling and
the training passes' forward and backward in C, AdamW fused as TRL steps it (the unshared run has no
shared prompts, so only its sampling and AdamW change); the C source compiles on its first use, inside
the first repeat's time.
TRL is a bench-only dependency (`pip install 'trl==1.16.*'`).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import SHAPE, emit, seed_list

from selfevolve.config import build_config
from selfevolve.judge.rewards import correct_reward
from selfevolve.metrics import mean_interval
from selfevolve.models.hf import load
from selfevolve.models.policy import Policy
from selfevolve.progress import Progress
from selfevolve.recipes import get_recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import held_out_split
from selfevolve.train.rl import RLConfig, Trainer, train_steps
from selfevolve.train.sft import SFTConfig, make_optimizer

LABELLED = 1500  # round 0's labelled seed problems
NEW_TOKENS = 12  # completion length: a three-number Countdown answer is at most 11 characters and a stop


def round0_config(seed: int):
    """Round 0 of bench/star_family.py's Countdown setting at the benches' model shape."""
    return build_config(get_recipe("star").Config, {"difficulty": 3, "num_labelled": LABELLED, "round0_steps": 400,
                                                    "iterations": 0, "eval_problems": 200, "seed": seed, **SHAPE})


def round0(out: Path, seed: int) -> Path:
    """Round 0 (`round0_config`), trained and exported as a Llama."""
    from selfevolve.models.hf_export import export_run

    cfg = round0_config(seed)
    store = RunStore.create(out / "round0", "star", "")
    with Progress(enabled=False) as progress:
        get_recipe("star").run(cfg, store, progress)
    return export_run(store, cfg.policy(get_task("countdown")), out / "hf")


def pass1(model, tok, held: list) -> float:
    """Greedy pass@1 on the held-out problems."""
    from selfevolve.search.sampling import answer

    task = get_task("countdown")
    greedy, _ = answer(model, tok, held, max_new=task.max_answer_tokens)
    return float(np.mean([task.verify(p, t) for p, t in zip(held, greedy, strict=True)]))


def our_trainer(model, tok, steps: int, lr: float, beta: float, **rl) -> Trainer:
    """Our trainer as the bench runs it: constant learning rate, no weight decay, a frozen reference
    copy when beta > 0 (also bench/rl_step.py's)."""
    cfg = RLConfig(kl_coef=beta, rl_learning_rate=lr, aggregation="sequence-mean", **rl)
    sft = SFTConfig(learning_rate=lr, warmup_steps=0, weight_decay=0.0, min_lr_ratio=1.0, fused=cfg.native)
    return Trainer(Policy(model, tok), cfg, make_optimizer(model, sft), sft, steps,
                   copy.deepcopy(model) if beta else None)


def ours(model_dir: Path, problems, args, seed: int, share_prompts: bool = True
         ) -> tuple[float, list[float], torch.nn.Module]:
    model, tok = load(str(model_dir))
    trainer = our_trainer(model, tok, args.steps, args.lr, args.beta, group_size=args.group,
                          prompts_per_step=args.prompts, share_prompts=share_prompts, native=args.native)
    t0 = time.perf_counter()
    log = train_steps(trainer, problems, args.steps, lambda p: p.prompt, lambda ps: {"problem": ps},
                      correct_reward(get_task("countdown")), args.new, rngs(seed, "bench").torch,
                      Progress(enabled=False), "ours")
    return time.perf_counter() - t0, [s["reward_mean"] for _, _, s in log], model


def trl(model_dir: Path, problems, args, seed: int, work: Path) -> tuple[float, list[float], Path]:
    import datasets
    import transformers
    from trl import GRPOConfig, GRPOTrainer

    task = get_task("countdown")
    by_prompt = {p.prompt: p for p in problems}

    def reward(prompts, completions, **_):
        return [float(task.verify(by_prompt[p], c)) for p, c in zip(prompts, completions, strict=True)]

    rows = [p.prompt for p in (problems * args.steps)[: args.steps * args.prompts]]
    config = GRPOConfig(output_dir=str(work / "trl"), use_cpu=True, report_to=[], bf16=False, seed=seed,
                        per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
                        max_completion_length=args.new, learning_rate=args.lr, beta=args.beta, max_steps=args.steps,
                        logging_steps=1, temperature=1.0, loss_type="grpo", scale_rewards="group", epsilon=0.2,
                        num_iterations=1, lr_scheduler_type="constant", weight_decay=0.0, warmup_steps=0,
                        adam_beta2=0.98,  # ours (train/sft.make_optimizer)
                        gradient_checkpointing=False,  # TRL's default recomputes activations: no use at this size
                        save_strategy="no", shuffle_dataset=False, dataloader_num_workers=0,
                        disable_tqdm=True)
    trainer = GRPOTrainer(model=transformers.AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=reward,
                          args=config, train_dataset=datasets.Dataset.from_dict({"prompt": rows}),
                          processing_class=transformers.AutoTokenizer.from_pretrained(model_dir))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    trainer.save_model(str(work / "trl-final"))
    return seconds, [h["reward"] for h in trainer.state.log_history if "reward" in h], work / "trl-final"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new", type=int, default=NEW_TOKENS)
    ap.add_argument("--lr", type=float, default=RLConfig.rl_learning_rate, help="both trainers (our default)")
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--held-out", type=int, default=300, help="held-out problems for the final pass@1")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each trainer, in turn; rates are their medians")
    ap.add_argument("--native", action="store_true", help="ours with native=true (the forward in C)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for seed in seed_list(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = round0(Path(tmp), seed)
            countdown = get_task("countdown")
            problems = countdown.sample(args.steps * args.prompts, 3, rngs(seed, "rl-bench").np, mixed=True)
            seed_set = round0_config(seed).seed_set(countdown)
            held, _ = held_out_split(countdown, args.held_out, 3, seed, "test",
                                     {p.prompt for p in problems + seed_set}, "rl-bench", mixed=True)
            completions = args.steps * args.prompts * args.group
            runs = []  # per repeat: (seconds, rewards) of ours, ours unshared and TRL
            for _ in range(args.repeats):
                t_ours, r_ours, trained = ours(model_dir, problems, args, seed)
                t_unshared, r_unshared, _ = ours(model_dir, problems, args, seed, share_prompts=False)
                t_trl, r_trl, trl_dir = trl(model_dir, problems, args, seed, Path(tmp))
                runs.append(((t_ours, r_ours), (t_unshared, r_unshared), (t_trl, r_trl)))
            (t_ours, r_ours), (t_unshared, r_unshared), (t_trl, r_trl) = (  # the last repeat's models are scored
                (float(np.median([run[i][0] for run in runs])), runs[-1][i][1]) for i in range(3))
            base, tok = load(str(model_dir))
            peer = f"trl {__import__('trl').__version__} GRPOTrainer (CPU)"
            rows.append(emit(
                bench="grpo_vs_trl", seed=seed, native=args.native, peer=peer, steps=args.steps, prompts=args.prompts,
                group=args.group,
                new_tokens=args.new, repeats=args.repeats, unit="completions/s (median over repeats)",
                ours_completions_per_s=round(completions / t_ours, 1),
                trl_completions_per_s=round(completions / t_trl, 1), speedup=paired_speedup(runs, 0),
                speedup_by_repeat=[round(run[2][0] / run[0][0], 2) for run in runs],
                ours_unshared_completions_per_s=round(completions / t_unshared, 1),
                unshared_speedup=paired_speedup(runs, 1),
                same_rewards_every_repeat=all(run[i][1] == runs[0][i][1] for run in runs for i in range(3)),
                same_rewards_unshared=bool(np.allclose(r_ours, r_unshared)),
                ours_reward_first5=round(float(np.mean(r_ours[:5])), 3),
                ours_reward_last5=round(float(np.mean(r_ours[-5:])), 3),
                trl_reward_first5=round(float(np.mean(r_trl[:5])), 3),
                trl_reward_last5=round(float(np.mean(r_trl[-5:])), 3), held_out=len(held),
                round0_pass1=round(pass1(base, tok, held), 3),
                ours_pass1=round(pass1(trained, tok, held), 3),
                trl_pass1=round(pass1(load(str(trl_dir))[0], tok, held), 3),
                ours_rewards=json.dumps([round(r, 3) for r in r_ours]),
                trl_rewards=json.dumps([round(r, 3) for r in r_trl])))
    summary(rows)


def paired_speedup(runs: list, i: int) -> float:
    """Median over repeats of TRL's time / run i's (0 ours, 1 ours unshared), each pair from one repeat."""
    return round(float(np.median([run[2][0] / run[i][0] for run in runs])), 2)


def summary(rows: list[dict]) -> None:
    """One line over seeds: the speedup, and ours - TRL in reward and held-out pass@1 with intervals."""
    rng = np.random.default_rng(0)
    reward = {who: np.array([np.mean(json.loads(r[f"{who}_rewards"])) for r in rows]) for who in ("ours", "trl")}
    diffs = {"reward_all_steps": reward["ours"] - reward["trl"],
             "reward_last5": np.array([r["ours_reward_last5"] - r["trl_reward_last5"] for r in rows]),
             "held_out_pass1": np.array([r["ours_pass1"] - r["trl_pass1"] for r in rows])}
    speedups = [r["speedup"] for r in rows]
    emit(bench="grpo_vs_trl_seeds", seeds=len(rows), speedup_median=round(float(np.median(speedups)), 2),
         speedup_range=[min(speedups), max(speedups)],
         **{f"{who}_pass1_mean": round(float(np.mean([r[f"{who}_pass1"] for r in rows])), 4)
            for who in ("round0", "ours", "trl")},
         **{f"ours_minus_trl_{k}": round(float(v.mean()), 4) for k, v in diffs.items()},
         **{f"ours_minus_trl_{k}_ci95": [round(q, 4) for q in mean_interval(v, rng)] for k, v in diffs.items()},
         **{f"ours_minus_trl_{k}_above_level_below": [int((v > 1e-9).sum()), int((abs(v) <= 1e-9).sum()),
                                                      int((v < -1e-9).sum())] for k, v in diffs.items()})


if __name__ == "__main__":
    main()
