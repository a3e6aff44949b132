"""An outcome reward model for web episodes (WebRL's ORM): a small LM that reads how an episode ended and
answers "yes" (the task is done) or "no", trained on episodes the site's verifier labelled and then
judging alone, so later rollouts need no verifier.

It sees the last page before the final action, the last actions and the final action, never the site's
reply to it ("done: the task is complete" would give the verdict away).
"""

from __future__ import annotations

import numpy as np
import torch

from selfevolve.agents.web_agent import WebEpisode
from selfevolve.models.policy import Policy
from selfevolve.progress import Progress
from selfevolve.train.dpo import reference_logprobs
from selfevolve.train.sft import Examples, SFTConfig, make_optimizer, train_on_pools

VERDICTS = ("yes", "no")


def orm_prompt(ep: WebEpisode) -> str:
    page = ep.prompts[-1].removesuffix("action: ")
    return f"{page}then: {ep.actions[-1]}\nsteps: {ep.steps}\ndone? "


def train_orm(orm: Policy, episodes: list[WebEpisode], labels: list[bool], sft: SFTConfig, steps: int,
              gen: torch.Generator, progress: Progress) -> float:
    """Fine-tune the ORM on labelled episodes, each batch half successes and half failures (the
    failures outnumber the successes); returns the last loss."""
    pools = []
    for want in (True, False):
        chosen = [ep for ep, y in zip(episodes, labels, strict=True) if y == want]
        if chosen:
            pools.append(Examples.encode(orm.tok, [orm_prompt(ep) for ep in chosen],
                                         [VERDICTS[0] if want else VERDICTS[1]] * len(chosen)))
    if not pools:
        raise ValueError("the ORM needs labelled episodes to learn from")
    loss, _ = train_on_pools(orm.model, make_optimizer(orm.model, sft), sft, pools, [1 / len(pools)] * len(pools),
                             steps, gen, progress, f"ORM on {len(episodes)} verified episodes")
    return loss


def judge(orm: Policy, episodes: list[WebEpisode]) -> list[bool]:
    """The ORM's verdict on each episode: "yes" more likely than "no"."""
    if not episodes:
        return []
    prompts = [orm_prompt(ep) for ep in episodes]
    scores = [reference_logprobs(orm.model, Examples.encode(orm.tok, prompts, [v] * len(prompts)))
              for v in VERDICTS]
    return (scores[0] > scores[1]).tolist()


def agreement(judged: list[bool], truth: list[bool]) -> dict[str, float]:
    """The ORM against the verifier: accuracy, and how often a success or a failure is judged right
    (recall of each class; nan where the class is absent)."""
    j, t = np.asarray(judged, bool), np.asarray(truth, bool)

    def share(mask: np.ndarray) -> float:
        return float(np.mean(j[mask] == t[mask])) if mask.any() else float("nan")

    return {"accuracy": share(np.ones_like(t)), "success_recall": share(t), "failure_recall": share(~t),
            "judged_success": float(j.mean()) if len(j) else float("nan")}
