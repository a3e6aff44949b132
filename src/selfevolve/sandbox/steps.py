"""The in-process evaluator for reasoning steps: `name = expression`, nothing else.

It walks the syntax tree itself and allows only assignments to names of arithmetic and comparisons
over numbers, strings and earlier names, and a few math functions on numbers. Nothing is handed to
`eval` or `exec`. Every operation is bounded before it runs (the size of every number and string,
exponents, `round`'s digits), and a wall-clock deadline covers whatever a bound missed, so any input
returns a result or a refusal, never an exception or a hang.
"""

from __future__ import annotations

import ast
import math
import time
import warnings
from dataclasses import dataclass, field

MAX_ABS = 10**15  # largest magnitude of any number a step may produce
MAX_EXPONENT = 64
MAX_DIGITS = 15  # round(x, n) with |n| above this is refused (round(1, -10**9) would run for hours)
MAX_STR = 256
MAX_CODE = 400  # characters of one step
DEADLINE = 1.0  # seconds for one call of run_steps, whatever it is given
FUNCTIONS = {"abs": abs, "min": min, "max": max, "round": round, "sqrt": math.sqrt, "floor": math.floor,
             "ceil": math.ceil}
BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
          ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
          ast.Pow: lambda a, b: a**b}
COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
           ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


class StepError(Exception):
    """Why a step was refused or failed; the message is the reason recorded for the step."""


@dataclass
class StepResult:
    ok: bool
    values: dict[str, float | int | str] = field(default_factory=dict)  # every name defined so far
    error: str = ""  # why the first failing step failed
    failed_step: int = -1  # its index, -1 if none


def _number(value) -> bool:
    return isinstance(value, int | float)


def _check(value):
    if isinstance(value, bool):
        return value
    if _number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise StepError("the result is not a finite number")
        if abs(value) > MAX_ABS:
            raise StepError(f"a number exceeds the limit of {MAX_ABS:.0e}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STR:
            raise StepError(f"a string exceeds {MAX_STR} characters")
        return value
    raise StepError(f"a value of type {type(value).__name__} is not allowed")


class _Evaluator:
    def __init__(self, names: dict, deadline: float):
        self.names, self.deadline = names, deadline

    def eval(self, node: ast.AST):
        if time.monotonic() > self.deadline:
            raise StepError("the steps ran past their time limit")
        if isinstance(node, ast.Constant):
            return _check(node.value)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise StepError(f"unknown name {node.id!r}")
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.eval(node.operand)
            if not _number(value):
                raise StepError("unary minus needs a number")
            return _check(-value if isinstance(node.op, ast.USub) else value)
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            return self.binary(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE:
            a, b = self.eval(node.left), self.eval(node.comparators[0])
            if not (_number(a) and _number(b) or isinstance(a, str) and isinstance(b, str)):
                raise StepError("a comparison needs two numbers or two strings")
            return COMPARE[type(node.ops[0])](a, b)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise StepError(f"{type(node).__name__} is not allowed in a step")

    def binary(self, op: ast.operator, a, b):
        if not (_number(a) and _number(b)):
            raise StepError("arithmetic needs numbers")
        if isinstance(op, ast.Pow) and (abs(b) > MAX_EXPONENT
                                        or (abs(a) > 1 and abs(b) * math.log10(abs(a)) > math.log10(MAX_ABS))):
            raise StepError("the power is too large")
        try:
            return _check(BINARY[type(op)](a, b))
        except ZeroDivisionError:
            raise StepError("division by zero") from None
        except (OverflowError, ValueError) as err:
            raise StepError(f"arithmetic error: {err}") from None

    def call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise StepError(f"only these calls are allowed: {', '.join(FUNCTIONS)} (positional arguments)")
        name, args = node.func.id, [self.eval(a) for a in node.args]
        if not all(_number(a) for a in args):
            raise StepError(f"{name}() takes numbers")
        if name == "round" and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > MAX_DIGITS):
            raise StepError(f"round() takes at most {MAX_DIGITS} digits, as a whole number")
        try:
            return _check(FUNCTIONS[name](*args))
        except (TypeError, ValueError, OverflowError) as err:
            raise StepError(f"{name}(): {err}") from None


def _run_step(code: str, names: dict, deadline: float) -> dict:
    if not isinstance(code, str):
        raise StepError("a step must be text")
    if len(code) > MAX_CODE:
        raise StepError(f"a step longer than {MAX_CODE} characters")
    try:
        with warnings.catch_warnings():  # model-written code like `x = 1if y else 2` must not print warnings
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(code.strip(), mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise StepError("not valid Python") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
        raise StepError("a step must be exactly one assignment: name = expression")
    stmt = tree.body[0]
    if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name) or stmt.targets[0].id.startswith("_"):
        raise StepError("a step must assign to one plain name")
    try:
        value = _Evaluator(names, deadline).eval(stmt.value)
    except RecursionError:
        raise StepError("the expression nests too deeply") from None
    return {**names, stmt.targets[0].id: value}


def run_step(code: str, names: dict) -> dict:
    """Run one `name = expression` line against `names`; returns the new names (input untouched)."""
    return _run_step(code, names, time.monotonic() + DEADLINE)


def run_steps(codes: list[str], names: dict | None = None, *, deadline: float = DEADLINE) -> StepResult:
    """Run step codes in order; stops at the first refused or failing step and says why."""
    values, until = dict(names or {}), time.monotonic() + deadline
    for i, code in enumerate(codes):
        try:
            values = _run_step(code, values, until)
        except StepError as err:
            return StepResult(False, values, str(err), i)
    return StepResult(True, values)
