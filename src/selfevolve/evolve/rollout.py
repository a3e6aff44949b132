"""Episode returns of a population of policies on a gymnasium environment, all at once.

Every (policy, episode) pair is one sub-environment of a single vector environment, stepped
together: CartPole uses gymnasium's NumPy-vectorised CartPole, other environments a
synchronous vector of copies. Each pair runs exactly one episode; rewards after its end
(gymnasium resets finished sub-environments on the next step) are not counted.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from selfevolve.errors import ConfigError
from selfevolve.evolve.policy import MLPSpec


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise ConfigError(f"unknown gymnasium environment {env_id!r}: {err}") from None
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)


def policy_spec(env_id: str, hidden: tuple[int, ...]) -> MLPSpec:
    """The MLP shape that maps this environment's observations to its actions."""
    env = gym.make(env_id) if env_id in gym.registry else make_vector_env(env_id, 1)
    obs, act = env.observation_space, env.action_space
    env.close()
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise ConfigError(f"{env_id}: needs a flat Box observation space, got {obs}")
    if isinstance(act, gym.spaces.Discrete):
        return MLPSpec((obs.shape[0], *hidden, int(act.n)), discrete=True)
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
        return MLPSpec((obs.shape[0], *hidden, act.shape[0]), discrete=False,
                       low=float(act.low.min()), high=float(act.high.max()))
    raise ConfigError(f"{env_id}: needs a Discrete or flat Box action space, got {act}")


@torch.no_grad()
def episode_returns(params: np.ndarray, spec: MLPSpec, env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Returns (P, episodes) of each of the P policies in `params` (P, dim); deterministic in `seed`."""
    P = params.shape[0]
    env = make_vector_env(env_id, P * episodes)
    try:
        obs, _ = env.reset(seed=seed)
        layers = spec.layers(torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32)))
        total = np.zeros(P * episodes)
        done = np.zeros(P * episodes, dtype=bool)
        while not done.all():
            actions = spec.act(layers, torch.as_tensor(obs, dtype=torch.float32).view(P, episodes, -1))
            obs, reward, terminated, truncated, _ = env.step(actions)
            total += np.where(done, 0.0, reward)
            done |= terminated | truncated
    finally:
        env.close()
    return total.reshape(P, episodes)


def mean_return(rows: np.ndarray, seed: int, spec: MLPSpec, env_id: str, episodes: int) -> np.ndarray:
    """Fitness for the GA: each policy's mean return over `episodes` episodes. (P, dim) -> (P,)."""
    return episode_returns(rows, spec, env_id, episodes, seed).mean(axis=1)
