"""GRPO, RLOO and REINFORCE: on-policy reinforcement learning on the model's own samples.

Shao et al. (2024), "DeepSeekMath" (GRPO), arXiv:2402.03300; Ahmadian et al. (2024), "Back to
Basics: Revisiting REINFORCE Style Optimization" (RLOO), arXiv:2402.14740; Liu et al. (2025),
"Understanding R1-Zero-Like Training" (Dr. GRPO), arXiv:2503.20783

    round 0: supervised fine-tuning on a small labelled seed set (or init_from another run's round 0)
    iteration i: `iteration_steps` policy-gradient steps (train/rl.py), each on `prompts_per_step`
             of the iteration's new problems (only their targets known) x `group_size` completions
             sampled from the current policy and scored by the reward functions (TRL's signature),
             with a KL term to the reference (the policy at the start of the iteration, or the
             round-0 model); then held-out pass@1 and pass@k, as every self-training recipe

    selfevolve run grpo --set algorithm=rloo --set kl_coef=0
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.on_policy import OnPolicyConfig, learn_on_policy, rl_plots
from selfevolve.selftrain import family, self_train


@dataclass
class Config(OnPolicyConfig):
    pass


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, act=learn_on_policy)


RECIPE = family(Config, run, rl_plots)
