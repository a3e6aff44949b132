"""On-policy reinforcement learning on the model's own samples: GRPO, RLOO and REINFORCE with a KL term.

Each step samples `group_size` completions to each of `prompts_per_step` prompts from the current
policy (one prefill per prompt, shared by its group), scores them with reward functions, turns the
rewards into advantages and takes `updates_per_batch` clipped policy-gradient steps:

    GRPO       A_i = (r_i - mean(group)) / std(group)      (Shao et al. 2024, DeepSeekMath)
               with scale_rewards=false, A_i = r_i - mean(group)   (Dr. GRPO, Liu et al. 2025)
    RLOO       A_i = r_i - mean of the other completions of the group   (Ahmadian et al. 2024)
    REINFORCE  A_i = r_i - b, b a running mean of rewards (decay `baseline_decay`)

    loss per token = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + kl_coef * k3(ref || policy)
    rho = pi(token) / pi_old(token), k3 = exp(ref - logp) - (ref - logp) - 1   (Schulman's estimator)

and the tokens' losses are aggregated as the papers do (`aggregation`): `sequence-mean` (GRPO: mean
over tokens of a completion, then over completions), `token-mean` (DAPO: over all tokens of the
batch) or `constant` (Dr. GRPO: the batch's token sum over completions x max_new_tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from selfevolve.models.policy import Policy
from selfevolve.progress import Progress
from selfevolve.train.dpo import answer_logprobs, reference_logprobs
from selfevolve.train.sft import Examples, SFTConfig, apply_loss, lr_at, make_optimizer, token_logprobs
from selfevolve.train.shared_prompts import SharedPrompts, share_prompts, shared_logprobs

ALGORITHMS = ("grpo", "rloo", "reinforce")
AGGREGATIONS = ("sequence-mean", "token-mean", "constant")
# TRL's reward signature: (prompts, completions, **columns) -> one float per completion
RewardFn = Callable[..., list[float]]


@dataclass
class RLConfig:
    """The on-policy trainer's settings, for any recipe that learns by policy gradient."""

    algorithm: str = "grpo"
    """grpo, rloo or reinforce (advantages: group-normalised, leave-one-out, or a running baseline)."""
    group_size: int = 8
    """Completions sampled per prompt."""
    prompts_per_step: int = 16
    """Prompts per step (a step trains on prompts_per_step x group_size completions)."""
    rl_temperature: float = 1.0
    """Sampling temperature of the completions (their log-probabilities are taken at it too)."""
    scale_rewards: bool = True
    """GRPO: divide by the group's reward std (false: Dr. GRPO's unscaled advantages)."""
    clip_eps: float = 0.2
    """PPO ratio clipping, which matters from the second update on the same batch."""
    updates_per_batch: int = 1
    """Optimizer steps on each sampled batch (mu; 1 = strictly on-policy)."""
    kl_coef: float = 0.04
    """Weight of the per-token KL (k3) to the reference model; 0 skips the reference entirely."""
    refresh_reference: bool = True
    """true: the reference is the policy at the start of each iteration; false: the round-0 model."""
    aggregation: str = "sequence-mean"
    """How token losses combine: sequence-mean (GRPO), token-mean (DAPO) or constant (Dr. GRPO)."""
    baseline_decay: float = 0.9
    """REINFORCE: the running baseline's decay per step."""
    rl_learning_rate: float = 1e-4
    """Peak AdamW learning rate of the policy-gradient steps."""
    share_prompts: bool = True
    """Read each group's prompt once in the training passes (train/shared_prompts.py): the same
    log-probabilities for fewer tokens; false reads it once per completion."""
    native: bool = False
    """Sample, and run the training passes (forward and backward), in C (models/native.py; our float32
    rope/nope models on the CPU, prompts shared; the recipes also step AdamW fused): faster steps for a
    small model, with values close to but not bit for bit the default path's, so other tokens for the
    same seed."""

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()  # a mixin: the recipe's other bases check theirs
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.group_size < 2 and self.algorithm != "reinforce":
            raise ValueError(f"{self.algorithm} needs group_size >= 2 (its baseline is the group), "
                             f"got {self.group_size}")
        for name in ("prompts_per_step", "updates_per_batch", "group_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rl_temperature <= 0 or self.rl_learning_rate <= 0 or self.clip_eps <= 0 or self.kl_coef < 0:
            raise ValueError("rl_temperature, rl_learning_rate and clip_eps must be > 0 and kl_coef >= 0")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")


def advantages(rewards: torch.Tensor, algorithm: str, scale: bool = True, baseline: float = 0.0) -> torch.Tensor:
    """(prompts, group) rewards -> advantages of the same shape."""
    if algorithm == "reinforce":
        return rewards - baseline
    g = rewards.shape[1]
    if algorithm == "rloo":
        return g / (g - 1) * (rewards - rewards.mean(1, keepdim=True))  # = r_i - mean of the others
    centred = rewards - rewards.mean(1, keepdim=True)
    return centred / (rewards.std(1, keepdim=True) + 1e-4) if scale else centred


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate, exp(d) - d - 1 with d = ref - logp: >= 0, 0 at equality."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip_eps: float,
                aggregation: str, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate (+ KL) over completion tokens. logp, old_logp, ref_logp, mask: (B, T);
    adv: (B,). Returns the loss and {clip_fraction, kl}."""
    mask = mask.float()
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    per_token = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    kl = k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if kl_coef:
        per_token = per_token + kl_coef * kl
    tokens = mask.sum().clamp(min=1)
    if aggregation == "sequence-mean":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif aggregation == "token-mean":
        loss = (per_token * mask).sum() / tokens
    else:
        loss = (per_token * mask).sum() / (len(mask) * (max_len or mask.shape[1]))
    clipped, kl = ((ratio - 1).abs() > clip_eps).float().detach(), kl.detach()
    return loss, {"clip_fraction": float((clipped * mask).sum() / tokens), "kl": float((kl * mask).sum() / tokens)}


def kl_regression_loss(logp: torch.Tensor, ref_logp: torch.Tensor, adv: torch.Tensor, beta: float) -> torch.Tensor:
    """WebRL's actor objective (Qi et al. 2024): the KL-constrained improvement of the reference policy is
    pi* proportional to pi_ref exp(A / beta), reached by regressing beta log(pi / pi_ref) on the advantage.
    logp, ref_logp: summed log-probabilities of each action; adv: its advantage. All (B,)."""
    return ((beta * (logp - ref_logp) - adv) ** 2).mean()


def logprobs_and_entropy(model, inputs: torch.Tensor, labels: torch.Tensor, temperature: float
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the labels at the sampling temperature, their mask, and each
    position's entropy (no gradient). (B, T) -> (B, T) x 3."""
    logp, mask, logp_all = token_logprobs(model, inputs, labels, temperature)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, mask, entropy


@dataclass
class Batch:
    """One step's sampled completions: token ids, rewards and who they belong to."""

    prompts: list[str]
    completions: list[str]
    examples: Examples  # prompt + completion ids, completion tokens as labels
    rewards: torch.Tensor  # (prompts, group)
    lengths: torch.Tensor  # (prompts * group,) completion tokens


def sample_batch(policy: Policy, prompts: list[str], columns: dict[str, list], rewards: RewardFn, group: int,
                 max_new: int, temperature: float, gen: torch.Generator, native: bool = False) -> Batch:
    """`group` completions per prompt from the policy, scored by `rewards` (columns repeated per completion);
    native: sampled through the forward in C."""
    from selfevolve.models.sampler import generate

    tok = policy.tok
    ids = [tok.encode(p) for p in prompts]
    out = generate(policy.model, ids, max_new, stop_id=tok.eos_id, pad_id=tok.pad_id, num_samples=group,
                   temperature=temperature, generator=gen, native=native)
    tokens = [out.tokens[i, : out.lengths[i]].tolist() for i in range(len(out.lengths))]
    texts = [tok.decode([t for t in row if t != tok.eos_id]) for row in tokens]
    rep = [p for p in prompts for _ in range(group)]
    scores = rewards(rep, texts, **{k: [v for v in col for _ in range(group)] for k, col in columns.items()})
    examples = Examples.of_tokens([i for i in ids for _ in range(group)], tokens, tok.pad_id)
    return Batch(rep, texts, examples, torch.tensor(scores, dtype=torch.float32).view(len(prompts), group),
                 out.lengths.clone())


@dataclass
class Prepared:
    inputs: torch.Tensor
    labels: torch.Tensor
    shared: SharedPrompts | None  # the batch with each group's prompt read once, where that applies
    ref: torch.Tensor | None  # the reference's per-token log-probabilities (with a KL term)
    old: torch.Tensor | None  # the policy's before the first update (with several updates per batch)

    def logprobs(self, model, temperature: float, native: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`logprobs_and_entropy` of the batch under `model`, its prompts shared where they can be (and then
        through the forward and backward in C with `native`)."""
        if self.shared is not None:
            return shared_logprobs(model, self.shared, temperature, native)
        return logprobs_and_entropy(model, self.inputs, self.labels, temperature)


class Trainer:
    """The policy-gradient steps of a run: the policy, its optimizer (carried across iterations and
    checkpointed by the caller), the reference, the step count of the learning-rate schedule and the
    REINFORCE baseline (both restored on resume from what the caller recorded)."""

    def __init__(self, policy: Policy, cfg: RLConfig, optimizer: torch.optim.Optimizer, sft: SFTConfig,
                 total_steps: int, reference: torch.nn.Module | None, done_steps: int = 0,
                 baseline: float = 0.0) -> None:
        self.policy, self.cfg, self.optimizer, self.total = policy, cfg, optimizer, total_steps
        self.sft = SFTConfig(learning_rate=cfg.rl_learning_rate, min_lr_ratio=sft.min_lr_ratio, warmup_steps=0,
                             weight_decay=sft.weight_decay, batch_size=sft.batch_size, grad_clip=sft.grad_clip)
        self.reference = reference.eval() if reference is not None and cfg.kl_coef else None
        self.steps, self.baseline = done_steps, baseline

    def prepare(self, batch: Batch) -> Prepared:
        """A batch's model inputs and, before any update, the reference's log-probabilities (with a KL
        term) and the policy's own (with several updates per batch)."""
        cfg, model = self.cfg, self.policy.model
        inputs, labels = batch.examples.batch(torch.arange(len(batch.examples)))
        shared = share_prompts(model, batch.examples, batch.rewards.shape[1]) if cfg.share_prompts else None
        prepared = Prepared(inputs, labels, shared, None, None)
        with torch.no_grad():
            if self.reference is not None:
                prepared.ref, _, _ = prepared.logprobs(self.reference, cfg.rl_temperature, cfg.native)
            if cfg.updates_per_batch > 1:
                model.eval()
                prepared.old, _, _ = prepared.logprobs(model, cfg.rl_temperature, cfg.native)
        return prepared

    def loss(self, prepared: Prepared, adv: torch.Tensor, kl_coef: float, max_new: int
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The clipped surrogate (+ kl_coef x KL) of one prepared batch with advantages `adv` (one per row)."""
        p = prepared
        logp, mask, entropy = p.logprobs(self.policy.model, self.cfg.rl_temperature, self.cfg.native)
        loss, info = policy_loss(logp, logp.detach() if p.old is None else p.old, adv, mask, self.cfg.clip_eps,
                                 self.cfg.aggregation, p.ref, kl_coef, max_new)
        return loss, {**info, "entropy": float((entropy * mask).sum() / mask.sum().clamp(min=1))}

    def update(self, losses) -> list[dict[str, float]]:
        """`updates_per_batch` optimizer steps, each on the summed losses `losses()` returns (a list of
        (loss, info) per batch: one turn, or two); returns each step's statistics."""
        self.policy.model.train()
        out = []
        for _ in range(self.cfg.updates_per_batch):
            parts = losses()
            loss = apply_loss(self.policy.model, self.optimizer, sum(x for x, _ in parts),
                              lr_at(self.steps, self.total, self.sft), self.sft)
            out.append({"loss": loss, **{k: float(np.mean([i[k] for _, i in parts])) for k in parts[0][1]}})
        self.steps += 1
        return out

    def step(self, batch: Batch, max_new: int) -> dict[str, float]:
        """`updates_per_batch` clipped policy-gradient steps on one sampled batch; returns its statistics."""
        cfg = self.cfg
        mean = float(batch.rewards.mean())
        if self.steps == 0:
            self.baseline = mean  # REINFORCE's running baseline starts at the first batch's mean
        adv = advantages(batch.rewards, cfg.algorithm, cfg.scale_rewards, self.baseline).flatten()
        prepared = self.prepare(batch)
        stats = self.update(lambda: [self.loss(prepared, adv, cfg.kl_coef, max_new)])
        self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * mean
        return {**batch_stats(batch), **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]}}


def batch_stats(batch: Batch) -> dict[str, float]:
    """Reward mean and std, the share of groups whose rewards are all equal, mean completion length."""
    groups = batch.rewards.std(1) == 0 if batch.rewards.shape[1] > 1 else torch.ones(1, dtype=torch.bool)
    return {"reward_mean": float(batch.rewards.mean()), "reward_std": float(batch.rewards.std()),
            "zero_variance_groups": float(groups.float().mean()),
            "completion_length": float(batch.lengths.float().mean())}


def step_problems(problems: list, step: int, size: int) -> list:
    """Step `step`'s `size` problems: the next ones in order, wrapping around."""
    lo = (step * size) % max(1, len(problems))
    return (problems[lo:] + problems)[:size]


def train_steps(trainer: Trainer, problems: list, steps: int, prompt_of, columns_of, rewards: RewardFn, max_new: int,
                gen: torch.Generator, progress: Progress, title: str) -> list[tuple[list, Batch, dict[str, float]]]:
    """`steps` RL steps over `problems` in order (prompts_per_step at a time, wrapping around); returns
    each step's problems, sampled batch and statistics."""
    cfg, log = trainer.cfg, []
    with progress.task(title, steps) as advance:
        for s in range(steps):
            chunk = step_problems(problems, s, cfg.prompts_per_step)
            batch = sample_batch(trainer.policy, [prompt_of(p) for p in chunk], columns_of(chunk), rewards,
                                 cfg.group_size, max_new, cfg.rl_temperature, gen, cfg.native)
            log.append((chunk, batch, trainer.step(batch, max_new)))
            advance(reward=log[-1][2]["reward_mean"], kl=log[-1][2]["kl"])
    return log


def kl_regression_update(policy: Policy, data: Examples, adv: torch.Tensor, beta: float, steps: int, sft: SFTConfig,
                         gen: torch.Generator, progress: Progress, title: str) -> float:
    """`steps` AdamW steps of `kl_regression_loss` on random batches of `data` (one action per row, `adv`
    its advantage), the reference being the policy as it is now; returns the last loss."""
    ref = reference_logprobs(policy.model, data)
    optimizer = make_optimizer(policy.model, sft)
    loss = float("nan")
    policy.model.train()
    with progress.task(title, steps) as advance:
        for step in range(steps):
            index = torch.randint(len(data), (min(sft.batch_size, len(data)),), generator=gen)
            logp, _ = answer_logprobs(policy.model, *data.batch(index))
            loss = apply_loss(policy.model, optimizer, kl_regression_loss(logp, ref[index], adv[index], beta),
                              lr_at(step, steps, sft), sft)
            advance(loss=loss)
    return loss


def confidence(policy: Policy, data: Examples) -> torch.Tensor:
    """Each row's answer as the policy sees it now: 1 / perplexity, the geometric mean of its tokens'
    probabilities (WebRL keeps replayed actions whose confidence lies in a band)."""
    return torch.exp(reference_logprobs(policy.model, data) / (data.lens - data.prompt_lens).clamp(min=1))
