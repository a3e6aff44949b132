"""Population methods without gradients, each behind `init(seed) / ask(state) / tell(state, ...)`.

The state is explicit plain data (it round-trips through JSON), so a user can drive a method
from their own loop, checkpoint it anywhere and resume it exactly:

    from selfevolve.evolve import DeepGA, GAConfig, Evaluator, mean_return, policy_spec
    spec = policy_spec("CartPole-v1", hidden=(32, 32))
    ga = DeepGA(GAConfig(pop_size=100), spec.dim, spec.init)
    evaluate = Evaluator(partial(mean_return, spec=spec, env_id="CartPole-v1", episodes=3), chunk_size=50,
                         backend="ray")  # or "serial": the same fitness for the same seed
    state = ga.init(seed=0)
    for gen in range(20):
        params, state = ga.ask(state)
        state = ga.tell(state, params, evaluate(params, seed=gen))
"""

import importlib

# name -> module; loaded on first use, so tree GP does not pay for torch and gymnasium
_EXPORTS = {
    "DeepGA": "ga", "GAConfig": "ga", "GAState": "ga",
    "GPConfig": "gp", "GPState": "gp", "TreeGP": "gp",
    "episode_returns": "rollout", "mean_return": "rollout", "policy_spec": "rollout",
    "Evaluator": "runner",
    "PrimitiveSet": "trees", "evaluate": "trees", "to_infix": "trees",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'selfevolve.evolve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"selfevolve.evolve.{_EXPORTS[name]}"), name)
