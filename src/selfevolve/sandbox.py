"""Running model-written code: hostile until proven otherwise.

Two doors, one for each kind of code:

- `run_steps`: reasoning-step code (`total = apples * 4`) goes through an in-process evaluator
  that walks the syntax tree itself and allows only assignments to names of arithmetic over
  numbers, earlier names and a few math functions, with limits on the size of every number,
  exponent and string. Nothing is ever handed to `eval` or `exec`; microseconds per step.
- `run_python`: general Python (for program-evolution methods) runs in a fresh interpreter in a
  temporary directory, with CPU-time, memory, file-size and process limits, an empty environment,
  and an audit hook installed before the code runs that refuses sockets, subprocesses, forks,
  `ctypes` and file access outside that directory. A timeout kills the whole process group.

Both return a verdict with a reason instead of raising, so the caller always keeps running.
"""

from __future__ import annotations

import ast
import functools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field

MAX_ABS = 10**15  # largest magnitude of any number a step may produce
MAX_EXPONENT = 64
MAX_STR = 256
MAX_CODE = 400  # characters of one step
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


def _check(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
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


def _eval(node: ast.AST, names: dict):
    if isinstance(node, ast.Constant):
        return _check(node.value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise StepError(f"unknown name {node.id!r}")
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand, names)
        if not isinstance(value, int | float):
            raise StepError("unary minus needs a number")
        return _check(-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        a, b = _eval(node.left, names), _eval(node.right, names)
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            raise StepError("arithmetic needs numbers")
        if isinstance(node.op, ast.Pow) and (abs(b) > MAX_EXPONENT or (abs(a) > 1 and abs(b) * math.log10(abs(a))
                                                                       > math.log10(MAX_ABS))):
            raise StepError("the power is too large")
        try:
            return _check(BINARY[type(node.op)](a, b))
        except ZeroDivisionError:
            raise StepError("division by zero") from None
        except (OverflowError, ValueError) as err:
            raise StepError(f"arithmetic error: {err}") from None
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE:
        return COMPARE[type(node.ops[0])](_eval(node.left, names), _eval(node.comparators[0], names))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise StepError(f"only these calls are allowed: {', '.join(FUNCTIONS)} (positional arguments)")
        args = [_eval(a, names) for a in node.args]
        try:
            return _check(FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError, OverflowError) as err:
            raise StepError(f"{node.func.id}(): {err}") from None
    raise StepError(f"{type(node).__name__} is not allowed in a step")


def run_step(code: str, names: dict) -> dict:
    """Run one `name = expression` line against `names`; returns the new names (input untouched)."""
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
        value = _eval(stmt.value, names)
    except RecursionError:
        raise StepError("the expression nests too deeply") from None
    return {**names, stmt.targets[0].id: value}


def run_steps(codes: list[str], names: dict | None = None) -> StepResult:
    """Run step codes in order; stops at the first refused or failing step and says why."""
    values = dict(names or {})
    for i, code in enumerate(codes):
        try:
            values = run_step(code, values)
        except StepError as err:
            return StepResult(False, values, str(err), i)
    return StepResult(True, values)


# ---- general Python in a limited child process ------------------------------------------------

# Runs first in the child: set the limits, install the audit hook, then run the code read from stdin.
# The hook outlives everything the code can do (CPython has no way to remove one), and it refuses
# raising the limits again, which root could otherwise do.
_GUARD = r"""
import os, resource, sys
cpu, memory, fsize = map(int, sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NOFILE, 64),
                     (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
ROOT = os.path.realpath(os.getcwd())
REFUSED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "os.kill", "os.killpg", "ctypes.", "pty.", "os.chdir", "os.chroot", "os.putenv", "os.unsetenv",
           "shutil.", "webbrowser.", "sys.addaudithook", "sys._getframe", "os.remove", "os.rmdir", "os.rename",
           "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "resource.setrlimit", "resource.prlimit",
           "sys.settrace", "sys.setprofile", "object.__getattr__", "function.__new__", "code.__new__", "marshal.")
MODULES = frozenset({"ctypes", "_ctypes", "socket", "_socket", "subprocess", "_posixsubprocess", "multiprocessing",
                     "pty", "signal", "mmap", "cffi", "gc", "inspect", "_thread", "threading", "asyncio", "ssl"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def hook(event, args, ROOT=ROOT, REFUSED=REFUSED, MODULES=MODULES, WRITE_FLAGS=WRITE_FLAGS, os=os):
    if event.startswith(REFUSED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and args[0].split(".")[0] in MODULES:
        raise PermissionError(f"sandbox: import of {args[0]} is not allowed")
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = str(args[1] or ""), args[2] if isinstance(args[2], int) else 0
        if any(c in mode for c in "wax+") or flags & WRITE_FLAGS:
            path = os.path.realpath(os.fsdecode(args[0]))
            if path != ROOT and not path.startswith(ROOT + os.sep):
                raise PermissionError(f"sandbox: writing {args[0]!r} outside the sandbox directory")
sys.addaudithook(hook)
code = sys.stdin.read()
del hook, cpu, memory, fsize, limit, value
exec(compile(code, "<sandbox>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass
class ProcessResult:
    ok: bool
    stdout: str
    stderr: str
    reason: str  # "" when ok; otherwise why it was stopped or failed
    returncode: int
    network_isolated: bool  # ran in its own empty network namespace (else sockets are refused by the hook)


@functools.cache
def _network_namespace() -> list[str]:
    """`unshare -rn` where this machine allows it: the child then has no network at all."""
    if not shutil.which("unshare"):
        return []
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["unshare", "-rn"] if ok else []


def run_python(code: str, *, timeout: float = 5.0, cpu_seconds: int = 5, memory_mb: int = 512,
               file_kb: int = 1024, max_output: int = 65536) -> ProcessResult:
    """Run `code` in a fresh, limited interpreter; never raises for anything the code does."""
    prefix = _network_namespace()
    limits = [str(cpu_seconds), str(memory_mb * 2**20), str(file_kb * 1024)]
    with tempfile.TemporaryDirectory(prefix="selfevolve-sandbox-") as workdir:
        try:
            proc = subprocess.Popen([*prefix, sys.executable, "-I", "-S", "-c", _GUARD, *limits], cwd=workdir,
                                    env={"PYTHONHASHSEED": "0"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as err:
            return ProcessResult(False, "", "", f"could not start the sandbox: {err}", -1, False)
        try:
            out, err = proc.communicate(code.encode(), timeout=timeout)
            reason = ""
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group, whatever it started
            out, err = proc.communicate()
            reason = f"timed out after {timeout} s"
    stdout, stderr = (data[:max_output].decode(errors="replace") for data in (out, err))
    if not reason and proc.returncode != 0:
        reason = _reason(proc.returncode, stderr)
    return ProcessResult(not reason, stdout, stderr, reason, proc.returncode, bool(prefix))


def _reason(returncode: int, stderr: str) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return {"SIGXCPU": "CPU time limit", "SIGKILL": "killed (CPU or memory limit)",
                "SIGXFSZ": "file size limit"}.get(name, f"killed by {name}")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
    if "MemoryError" in last:
        return "memory limit"
    return "file size limit" if "File too large" in last else last[:300]
