"""An interpreter that imports selfevolve's heavy dependencies once and then forks one child per
`selfevolve` command the tests run (helpers.run_selfevolve is its client).

A fresh interpreter pays 3-4 s of imports (torch, torch._dynamo at the first optimizer, pandas through
pyarrow, matplotlib, transformers and peft) and 1-2 s of tearing them down at exit, for every command
the suite runs. Each child is still its own process: its own argv, working directory, environment,
stdin (empty), stdout, stderr, exit status and signals (kill -9 tests kill it as they would any process),
and it imports selfevolve itself afresh, so it runs the code on disk from clean module state. What it
does not check is that a fresh interpreter starts: the tests that run the real console script
(test_reliability's usage errors, test_serve's servers) do. SELFEVOLVE_TESTS_FRESH=1 runs every command
in a fresh interpreter instead.

Protocol, one JSON line per command on stdin: {"args", "cwd", "env", "stdout", "stderr"} (the last two
are files the child writes); the reply is two lines on stdout: the child's pid, then its exit status as
subprocess reports it (negative: killed by that signal)."""

import atexit
import json
import os
import runpy
import sys
import threading


def preload() -> None:
    """Import (never run) the dependencies: nothing here may start a thread that a fork would lose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401
    import peft  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import rich.console  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401
    import transformers
    import typer  # noqa: F401

    transformers.LlamaForCausalLM  # noqa: B018 (transformers imports its model classes lazily)
    assert not torch.cuda.is_initialized()


def become(request: dict) -> None:
    """In the child: take the command's place, run `python -m selfevolve ARGS`, and end the process."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                            (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["selfevolve", *request["args"]]
    sys.path[0] = request["cwd"]  # where `python -m` looks first, instead of this file's folder
    try:
        runpy.run_module("selfevolve", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code
    leave(code)  # an uncaught exception travels up instead: a traceback and the interpreter's own exit 1


def leave(code) -> None:
    """End as the interpreter's exit does (non-daemon threads joined, atexit handlers, streams flushed),
    less tearing down every module, which takes 1-2 s with torch and transformers loaded."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            become(request)
        print(pid, flush=True)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)


if __name__ == "__main__":
    serve()
