"""Running model-written code: hostile until proven otherwise.

Two doors, one for each kind of code:

- `run_steps` (`steps.py`): reasoning-step code (`total = apples * 4`) goes through an in-process
  evaluator that walks the syntax tree itself; microseconds per step, every operation bounded.
- `run_python` (`process.py`): general Python runs in a fresh interpreter that the kernel itself
  confines before the code starts (`isolation.py`: Landlock, seccomp, namespaces, rlimits).

Both return a verdict with a reason instead of raising, so the caller always keeps running.
"""

from selfevolve.sandbox.process import ProcessResult, run_python
from selfevolve.sandbox.steps import StepError, StepResult, run_step, run_steps

__all__ = ["ProcessResult", "StepError", "StepResult", "run_python", "run_step", "run_steps"]
