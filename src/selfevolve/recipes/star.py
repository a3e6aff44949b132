"""STaR / ReST-EM: rejection-sampling fine-tuning on the model's own verified answers.

Zelikman et al. (2022), "STaR: Bootstrapping Reasoning With Reasoning", arXiv:2203.14465;
Singh et al. (2023), "Beyond Human Data: Scaling Self-Training ... (ReST-EM)", arXiv:2312.06585

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample `samples_per_problem` answers to each of `problems_per_iteration` new
             problems (only the target is known), keep the distinct answers the judge accepts
             (the exact verifier, or with judge=orm an outcome reward model), fine-tune on them
             (continuing, or from the round-0 model again with restart=true: ReST-EM), then score
             held-out pass@1 (greedy) and pass@k
    every iteration also records B-STaR's exploration and exploitation monitors on its own samples

    selfevolve run star --set restart=true
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.selftrain import SelfTrainConfig, family, finetune_on_kept, sample_at_temperature, self_train


@dataclass
class Config(SelfTrainConfig):
    pass


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=sample_at_temperature, learn=finetune_on_kept)


RECIPE = family(Config, run)
