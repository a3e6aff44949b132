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
        state = ga.tell(state, evaluate(ga.ask(state), seed=gen))
"""

from selfevolve.evolve.ga import DeepGA, GAConfig, GAState
from selfevolve.evolve.gp import GPConfig, GPState, TreeGP
from selfevolve.evolve.rollout import episode_returns, mean_return, policy_spec
from selfevolve.evolve.runner import Evaluator
from selfevolve.evolve.trees import PrimitiveSet, evaluate, to_infix

__all__ = ["DeepGA", "Evaluator", "GAConfig", "GAState", "GPConfig", "GPState", "PrimitiveSet", "TreeGP",
           "episode_returns", "evaluate", "mean_return", "policy_spec", "to_infix"]
