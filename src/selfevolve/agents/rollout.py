"""Agents acting in text environments: many episodes in lockstep, one LM call per step for all.

An episode's prompt at each step is its current observation (the environments are Markov) and
the agent replies in ReAct form, "Thought: ...\\nAction: ...". Trajectories come back as a
table (one row per step: env, task id, step, observation, action, log-prob, reward) that the run
directory stores as Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfevolve.agents.env import make_env
from selfevolve.progress import Progress


def prompt_of(observation: str) -> str:
    return f"{observation}\n"


@dataclass
class Episode:
    env: str
    task_id: int
    observations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def add(self, observation: str, action: str, logprob: float, reward: float) -> None:
        self.observations.append(observation)
        self.actions.append(action)
        self.logprobs.append(logprob)
        self.rewards.append(reward)

    @property
    def success(self) -> bool:
        return sum(self.rewards) >= 1.0

    @property
    def key(self) -> tuple:
        """What makes two trajectories the same: environment, task and every action."""
        return self.env, self.task_id, tuple(self.actions)


def run_episodes(lm, tasks: list[tuple[str, int]], temperature: float = 0.0, max_tokens: int = 48,
                 progress: Progress | None = None, title: str = "act") -> list[Episode]:
    """Play one episode per (environment, task id), all in lockstep: every step is one batched call."""
    envs = [make_env(name) for name, _ in tasks]
    episodes = [Episode(name, task_id) for name, task_id in tasks]
    observations = [env.reset(task_id)[0] for env, (_, task_id) in zip(envs, tasks, strict=True)]
    live = list(range(len(tasks)))
    progress = progress or Progress(enabled=False)
    with progress.task(title, len(tasks)) as advance:  # in episodes finished
        while live:
            replies = lm.generate([prompt_of(observations[i]) for i in live], temperature=temperature,
                                  max_tokens=max_tokens)
            still = []
            for i, (reply,) in zip(live, replies, strict=True):
                obs, reward, terminated, truncated, _ = envs[i].step(reply.text)
                episodes[i].add(observations[i], reply.text, reply.logprob, reward)
                observations[i] = obs
                if not (terminated or truncated):
                    still.append(i)
            advance(len(live) - len(still), playing=len(still))
            live = still
    return episodes


def expert_episodes(tasks: list[tuple[str, int]]) -> list[Episode]:
    """The scripted experts' demonstrations of these tasks."""
    out = []
    for name, task_id in tasks:
        env, episode = make_env(name), Episode(name, task_id)
        obs, _ = env.reset(task_id)
        done = False
        while not done:
            action = env.expert()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            episode.add(obs, action, 0.0, reward)
            obs, done = next_obs, terminated or truncated
        out.append(episode)
    return out


def trajectory_table(episodes: list[Episode], **constant) -> dict[str, list]:
    """One row per step, plus constant columns (e.g. iteration=3), for Parquet."""
    cols: dict[str, list] = {k: [] for k in ("env", "task_id", "episode", "step", "observation", "action",
                                              "logprob", "reward", "success", *constant)}
    for n, ep in enumerate(episodes):
        for step, (obs, action, lp, reward) in enumerate(zip(ep.observations, ep.actions, ep.logprobs, ep.rewards,
                                                             strict=True)):
            for k, v in (("env", ep.env), ("task_id", ep.task_id), ("episode", n), ("step", step),
                         ("observation", obs), ("action", action), ("logprob", lp), ("reward", reward),
                         ("success", ep.success), *constant.items()):
                cols[k].append(v)
    return cols
