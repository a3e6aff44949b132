"""LongPO: a model teaches its long-context self with what it answers when given only the short context.

Chen et al. (2025), "LongPO: Long Context Self-Evolution of Large Language Models through
Short-to-Long Preference Optimization", arXiv:2502.13922

    round 0: next-token training on the labelled problems' documents (positions to their full
             length) and question answering on short contexts only (tasks/long_lookup.py): the
             model answers well from the chunk that holds the fact and worse from the whole document
    iteration i: for each new document, one answer from the short context (chosen) and one from
             the whole document (rejected); on the pairs that differ, DPO on the long prompt against
             the round-0 model reading the *short* prompt (the short-to-long reference), plus an NLL
             term on the chosen answer; `objective=dpo` takes the usual reference (the round-0 model
             on the long prompt), `objective=sft` fine-tunes on the same pairs' chosen answers (same
             steps, batch size and learning rate), `objective=star` self-trains as STaR does
    every iteration: held-out accuracy from the whole document (pass1) and from the short context
             (short_pass1, the skill to keep)

    selfevolve run longpo --set objective=sft
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selfevolve.config import check_one_of
from selfevolve.models.policy import TINY
from selfevolve.search.answers import Answers
from selfevolve.search.sampling import NO_STOP, answer, ask
from selfevolve.selftrain import Learned, Proposal, SelfTrainConfig, Step, family, finetune_on_kept, self_train
from selfevolve.tasks.base import Problem
from selfevolve.tasks.long_lookup import LongLookupTask, short_prompt
from selfevolve.train.dpo import PreferenceConfig, reference_pairs, train_pairs
from selfevolve.train.sft import Examples, train_on_pools

OBJECTIVES = ("longpo", "dpo", "sft", "star")


@dataclass
class Config(PreferenceConfig, SelfTrainConfig):
    LATER_ROUNDS = (*SelfTrainConfig.LATER_ROUNDS, "objective", "beta", "nll_weight", "dpo_learning_rate")
    PRESETS: ClassVar[dict[str, dict]] = {
        "smollm2": {},
        "tiny": {"model": "tiny", "lora_r": 0, "batch_size": 64, "num_labelled": 2000, "round0_steps": 1500,
                 "iterations": 4, "problems_per_iteration": 1000, "iteration_steps": 100, "eval_problems": 300}}
    preset: str = "smollm2"
    """smollm2 (the defaults: SmolLM2 with LoRA r=8, which reads a chunk and a whole document unequally
    after 30 round-0 steps) or tiny (a small transformer trained from scratch, which learns no lookup at
    this size: see the README); --set values override a preset's."""
    task: str = "lookup"
    objective: str = "longpo"
    """longpo (short-to-long reference), dpo (the usual long-input reference), sft (on the same pairs'
    chosen answers, at dpo_learning_rate) or star (STaR on every chosen answer with labelled examples)."""
    model: str = "smollm2"
    lora_r: int = 8
    batch_size: int = 8
    difficulty: int = 14
    """Chunks of four facts in a held-out or new document (training documents have 1 to this many)."""
    samples_per_problem: int = 2  # one answer from the short context, one from the whole document
    num_labelled: int = 400
    round0_steps: int = 30
    iterations: int = 1
    problems_per_iteration: int = 200
    iteration_steps: int = 20
    eval_problems: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of(self, "preset", tuple(self.PRESETS))
        if self.task != "lookup":
            raise ValueError(f"longpo reads long documents (task=lookup), got task={self.task!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.samples_per_problem != 2:
            raise ValueError("longpo draws one short-context and one long-context answer: samples_per_problem=2")

    def make_task(self) -> LongLookupTask:
        return LongLookupTask()

    def keeps_base(self) -> bool:
        return True  # the reference is the round-0 model

    def round0_examples(self, tok, seed_set: list[Problem], rng: np.random.Generator) -> Examples:
        """Questions on short contexts only; a model trained from scratch also reads the documents (next
        token), so that its positions are trained to their full length."""
        short = Examples.encode(tok, [short_prompt(p.prompt) for p in seed_set], [p.answer for p in seed_set])
        if self.model != TINY:
            return short
        documents = [p.prompt.partition("|")[0] for p in seed_set]
        return Examples.concat([Examples.encode(tok, [d[:1] for d in documents], [d[1:] for d in documents]), short])

    def evaluate_more(self, policy, task, problems: list[Problem], greedy: list[str]) -> dict:
        short = ask(policy, problems, [short_prompt(p.prompt) for p in problems], task.max_answer_tokens)
        return {"short_pass1": float(np.mean([task.verify(p, a) for p, a in zip(problems, short, strict=True)]))}


def short_and_long(step: Step, problems: list[Problem]) -> Proposal:
    """Per problem, an answer from the short context (scored 1: preferred) and one from the whole document."""
    cfg, task = step.cfg, step.task
    with step.progress.task(f"answer {len(problems)} questions from the chunk and from the document", 2) as adv:
        texts = []
        for prompts in ([Problem(short_prompt(p.prompt), p.answer, p.difficulty, p.fields) for p in problems],
                        problems):
            texts.append(answer(step.policy.model, step.policy.tok, prompts, temperature=cfg.temperature,
                                generator=step.gen, max_new=task.max_answer_tokens)[0])
            adv(1)
    rows = [[s, long] for s, long in zip(*texts, strict=True)]
    correct = np.array([[task.verify(p, t) for t in row] for p, row in zip(problems, rows, strict=True)])
    preferred = np.tile([1.0, 0.0], (len(problems), 1))
    return Proposal(Answers(problems, rows, correct, preferred, np.full(correct.shape, cfg.temperature)),
                    cfg.temperature, 0.5, {"short_correct": float(correct[:, 0].mean()),
                                           "long_correct": float(correct[:, 1].mean())})


def learn_short_to_long(step: Step, samples: dict[str, list]) -> Learned:
    """The iteration's steps on the pairs whose two answers differ: DPO + NLL against the short-input (longpo)
    or long-input (dpo) reference, or (sft) fine-tuning on their chosen answers with the same steps,
    batch size and learning rate, so the baselines differ from LongPO in the objective only. `star` is
    plain self-training instead: STaR's step on every chosen answer, labelled examples mixed in, at
    learning_rate."""
    cfg, tok = step.cfg, step.policy.tok
    if cfg.objective == "star":
        return finetune_on_kept(step, samples)
    prompts, answers = samples["prompt"], samples["answer"]
    pairs = [(prompts[i], answers[i], answers[i + 1]) for i in range(0, len(prompts), 2)
             if answers[i] != answers[i + 1] and NO_STOP not in (answers[i], answers[i + 1])]
    if not pairs:
        step.progress.log(f"[yellow]round {step.r}: no pair to learn from")
        return Learned(step.optimizer, float("nan"), 0, {"pairs": 0})
    long, chosen, rejected = (list(x) for x in zip(*pairs, strict=True))
    good, bad = Examples.encode(tok, long, chosen), Examples.encode(tok, long, rejected)
    title = f"round {step.r}: {cfg.objective} on {len(pairs)} pairs"
    if cfg.objective == "sft":
        loss, tokens = train_on_pools(step.policy.model, step.optimizer, cfg.preference_sft(), [good], [1.0],
                                      cfg.iteration_steps, step.gen, step.progress, title)
        return Learned(step.optimizer, loss, tokens, {"pairs": len(pairs)})
    seen = [short_prompt(p) for p in long] if cfg.objective == "longpo" else long  # what the reference reads
    reference = reference_pairs(step.base, Examples.encode(tok, seen, chosen), Examples.encode(tok, seen, rejected))
    loss, tokens = train_pairs(step.policy.model, step.optimizer, cfg.preference_sft(), good, bad, cfg.iteration_steps,
                               cfg.beta, cfg.nll_weight, step.gen, step.progress, title, reference=reference)
    return Learned(step.optimizer, loss, tokens, {"pairs": len(pairs)})


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=short_and_long, learn=learn_short_to_long)


RECIPE = family(Config, run)
