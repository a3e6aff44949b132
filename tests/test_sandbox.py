"""The sandbox: hostile code is refused or stopped with a reason, changes nothing outside, and the caller goes on.

The corpus below runs against both doors: the step evaluator must answer every snippet with a result or a
refusal, quickly; the confined interpreter must leave a canary directory, a secret, a listening server and
the machine's hostname exactly as they were.
"""

import os
import socket
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfevolve.sandbox import run_python, run_step, run_steps
from selfevolve.tasks import get_task

# ---- reasoning steps: the in-process evaluator


def test_steps_compute_from_earlier_names():
    result = run_steps(["apples = 3 * 4", "eaten = 5", "answer = apples - eaten", "half = answer / 2",
                        "r = round(max(half, 1) ** 2)", "same = 'a' == 'a'"])
    assert result.ok and result.values["answer"] == 7 and result.values["r"] == 12 and result.values["same"]


@pytest.mark.parametrize("code,reason", [
    ("import os", "exactly one assignment"),
    ("x = __import__('os')", "only these calls"),
    ("x = ().__class__.__base__.__subclasses__()", "only these calls"),
    ("x = ().__class__", "Attribute is not allowed"),
    ("x = open('/etc/passwd')", "only these calls"),
    ("x = 10**10**10", "power is too large"),
    ("x = 9**50", "power is too large"),
    ("x = 10**15 * 10", "exceeds the limit"),
    ("x = 'a' * 10**6", "arithmetic needs numbers"),
    ("x = 'a' < 1", "two numbers or two strings"),
    ("x = round(1, -10**9)", "at most 15 digits"),
    ("x = round(1.5, 2.5)", "as a whole number"),
    ("x = max('a', 'b')", "max() takes numbers"),
    ("x = sqrt('4')", "sqrt() takes numbers"),
    ("x = ceil(1e300)", "exceeds the limit"),
    ("x = (-8) ** 0.5", "type complex"),
    ("x = 1e999", "not a finite number"),
    ("x = lambda: 0", "Lambda is not allowed"),
    ("x = [1] * 10", "List is not allowed"),
    ("x = y + 1", "unknown name 'y'"),
    ("x = 1 / 0", "division by zero"),
    ("x = sqrt(-1)", "sqrt()"),
    ("x = 1; y = 2", "exactly one assignment"),
    ("x.y = 1", "one plain name"),
    ("__builtins__ = 1", "one plain name"),
    ("while True: pass", "exactly one assignment"),
    ("x = max(key=len)", "positional arguments"),
    ("x = 1 +", "not valid Python"),
    ("x = " + "1+" * 300 + "1", "longer than"),
])
def test_hostile_steps_are_refused_with_a_reason(code, reason):
    result = run_steps(["a = 1", code, "answer = a"])
    assert not result.ok and result.failed_step == 1 and reason in result.error, result.error
    assert result.values == {"a": 1}  # what ran before is kept; nothing after runs


def test_model_written_code_that_python_warns_about_prints_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SyntaxWarning would now raise
        result = run_steps(["a = 1", "b = 2if a else 3"])
    assert not result.ok and "IfExp is not allowed" in result.error


def test_a_step_never_changes_the_names_it_was_given():
    names = {"a": 1}
    assert run_step("a = a + 1", names) == {"a": 2} and names == {"a": 1}


def test_the_wall_clock_guard_stops_steps_that_no_bound_caught():
    result = run_steps(["a = 1"] * 1000 + ["b = 2"], deadline=0.0)
    assert not result.ok and "time limit" in result.error


# Random expressions of the allowed grammar, with strings, huge and non-finite numbers mixed in.
LEAVES = st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["a", "s", "big"]), st.text(max_size=5).map(repr))
OPS = ["+", "-", "*", "/", "//", "%", "**", "<", "==", ">="]
EXPRESSIONS = st.recursive(LEAVES.map(str), lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(OPS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    st.tuples(st.sampled_from(["abs", "min", "max", "round", "sqrt", "floor", "ceil"]),
              st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    inner.map(lambda e: f"-{e}")), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EXPRESSIONS, min_size=1, max_size=3))
def test_any_expression_of_the_grammar_gives_a_result_or_a_refusal_quickly(expressions):
    start = time.monotonic()
    result = run_steps(["a = 7", "s = 'ab'", "big = 10**15"] + [f"x{i} = {e}" for i, e in enumerate(expressions)])
    assert time.monotonic() - start < 1.5
    assert result.ok or result.error


@settings(max_examples=100, deadline=None)
@given(st.lists(EXPRESSIONS, min_size=1, max_size=3))
def test_wordmath_verify_never_raises_on_model_written_steps(expressions):
    task = get_task("wordmath")
    problem = task.sample(1, 2, np.random.default_rng(0))[0]
    text = "\n".join(f"step: x{i} = {e}" for i, e in enumerate(expressions)) + "\ncount: answer = x0"
    assert task.verify(problem, text) in (True, False)


# ---- the hostile corpus, against both doors

# {out}: a directory outside the sandbox; {secret}: a file in it; {victim}: a file it must not change;
# {port}: a server listening on 127.0.0.1. "libc" snippets go around Python to the C library.
LIBC = ("import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def ok(r):\n    if r < 0:\n        sys.exit(f'refused: errno {{ctypes.get_errno()}}')\n    return r\n")
HOSTILE = [
    # writing, creating, renaming, deleting outside
    "open('{victim}', 'w').write('pwned')", "open('{victim}', 'a').write('pwned')",
    "open('{out}/new.txt', 'w').write('pwned')", "import os\nos.open('{out}/new2', os.O_CREAT | os.O_WRONLY)",
    "import os\nos.mkdir('{out}/d')", "import os\nos.makedirs('{out}/a/b')", "import os\nos.mkfifo('{out}/fifo')",
    "import os\nos.mknod('{out}/node')", "import os\nos.symlink('{secret}', '{out}/link')",
    "import os\nos.link('{secret}', '{out}/hard')", "import os\nos.rename('{victim}', '{out}/moved')",
    "import os\nos.rename('{victim}', 'stolen')", "import os\nos.replace('{secret}', '{victim}')",
    "import os\nos.remove('{victim}')", "import os\nos.rmdir('{out}')", "import shutil\nshutil.rmtree('{out}')",
    "import os\nos.truncate('{victim}', 0)", "import os\nos.open('{victim}', os.O_RDWR | os.O_TRUNC)",
    "import pathlib\npathlib.Path('{victim}').write_text('pwned')", "import pathlib\npathlib.Path('{out}/t').touch()",
    "import shutil\nshutil.copy('{secret}', '{out}/copy')",
    # metadata: permissions, owners, timestamps, attributes
    "import os\nos.chmod('{victim}', 0o777)", "import os\nos.chown('{victim}', 1, 1)",
    "import os\nos.utime('{victim}', (0, 0))", "import os\nos.setxattr('{victim}', 'user.x', b'1')",
    "import os\nos.chmod('{out}', 0o777)", LIBC + "ok(libc.syscall(90, b'{victim}', 0o777))",
    LIBC + "ok(libc.syscall(280, -100, b'{victim}', None, 0))",
    # reading outside
    "print(open('{secret}').read())", "import os\nprint(os.listdir('{out}'))", "print(open('/etc/shadow').read())",
    "print(open('/proc/1/environ').read())", "import glob\nassert glob.glob('{out}/*')",
    "import io\nprint(io.FileIO('{secret}').read())", "import os\nprint(os.read(os.open('{secret}', 0), 99))",
    "import os\nos.symlink('{secret}', 'l')\nprint(open('l').read())",
    "import os\nos.link('{secret}', 'h')\nprint(open('h').read())",
    LIBC + "b = ctypes.create_string_buffer(99)\nok(libc.read(ok(libc.open(b'{secret}', 0)), b, 99))\nprint(b.value)",
    "import os\nos.chdir('/')\nprint(os.listdir('.'))",
    # processes and programs
    "import os\nassert os.system('cat {secret}') == 0",
    "import subprocess\nprint(subprocess.check_output(['cat', '{secret}']))",
    "import os\nos.execv('/bin/sh', ['sh', '-c', 'cat {secret}'])", "import os\nprint(os.fork())",
    "import os\nos.posix_spawn('/bin/cat', ['cat', '{secret}'], {{}})",
    "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\np.join()",
    "import pty\npty.spawn('/bin/sh')", LIBC + "print(ok(libc.fork()))",
    LIBC + "print(ok(libc.syscall(56, 17, 0, 0, 0, 0)))",
    "import os\nwhile True:\n    os.fork()", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
    "import os\nos.kill(1, 0)",
    "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
    "assert w.__init__.__globals__['system']('cat {secret}') == 0",
    # network
    "import socket\nsocket.create_connection(('127.0.0.1', {port})).send(b'pwned')",
    "import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))",
    "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/')",
    LIBC + "print(ok(libc.socket(2, 1, 0)))",
    "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()",
    "import socket\nsocket.socket(socket.AF_UNIX).connect('\\0abstract')",
    # limits and the machine
    "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
    "import resource\nresource.prlimit(0, resource.RLIMIT_CPU, (1000, 1000))", "while True:\n    pass",
    "x = bytearray(4 * 1024**3)", "open('big', 'wb').write(b'x' * (8 * 1024 * 1024))",
    "for i in range(200):\n    open(f'f{{i}}', 'wb').write(b'x' * 1000000)", "x = 10**10**10",
    "import time\ntime.sleep(100)", "import os\nos.write(1, b'x' * 10**7)",
    "import os\nos.chroot('/tmp')", LIBC + "print(ok(libc.mount(b'none', b'{out}', b'tmpfs', 0, None)))",
    LIBC + "print(ok(libc.unshare(0x10000000)))", LIBC + "print(ok(libc.syscall(425, 8, None)))",
    LIBC + "print(ok(libc.sethostname(b'pwned', 5)))", LIBC + "print(ok(libc.reboot(0)))",
    LIBC + "print(ok(libc.syscall(101, 16, 1, 0, 0)))",
]


def test_the_corpus_is_large_enough():
    assert len(HOSTILE) >= 60 and len(set(HOSTILE)) == len(HOSTILE)


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A directory the sandbox must neither read nor change, and a server it must not reach."""
    out = tmp_path_factory.mktemp("outside")
    (out / "secret.txt").write_text("SECRET-7f3a9")
    (out / "victim.txt").write_text("untouched")
    os.chmod(out / "victim.txt", 0o640)
    os.utime(out / "victim.txt", (1_000_000_000, 1_000_000_000))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield out, server
    server.close()


def _snapshot(out):
    return sorted((p.name, p.stat().st_mode, p.stat().st_mtime_ns, p.stat().st_uid, p.read_bytes()
                   if p.is_file() else b"") for p in out.iterdir()) + [(out.stat().st_mode,)]


@pytest.mark.parametrize("snippet", HOSTILE)
def test_hostile_code_is_answered_by_the_step_evaluator(snippet):
    start = time.monotonic()
    result = run_steps([snippet.format(out="/tmp/o", secret="/tmp/o/s", victim="/tmp/o/v", port=1)])
    assert not result.ok and result.error and time.monotonic() - start < 1


def test_hostile_code_changes_nothing_outside_the_confined_interpreter(outside):
    out, server = outside
    before, hostname = _snapshot(out), socket.gethostname()
    refused = 0
    for snippet in HOSTILE:
        code = snippet.format(out=out, secret=out / "secret.txt", victim=out / "victim.txt",
                              port=server.getsockname()[1])
        result = run_python(code, timeout=2, cpu_seconds=1, memory_mb=256)
        assert result.isolation.startswith("landlock"), result.reason  # it ran confined, or not at all
        assert "SECRET" not in result.stdout + result.stderr, snippet
        assert _snapshot(out) == before, snippet
        with pytest.raises(BlockingIOError):
            server.accept()
        assert socket.gethostname() == hostname
        refused += not result.ok
    assert refused == len(HOSTILE) - 1  # all but the flood of its own stdout, which is cut at max_output


@pytest.mark.parametrize("code,reason", [
    ("while True:\n    pass", "timed out (limits: 10 s, 1 s of CPU)"),
    ("x = bytearray(4 * 1024**3)", "memory limit"),
    ("open('big', 'wb').write(b'x' * (8 * 1024 * 1024))", "file size limit"),
    ("for i in range(200):\n    open(f'f{i}', 'wb').write(b'x' * 1000000)", "No space left"),
    ("import os\nos.fork()", "Operation not permitted"),
    ("open('/etc/hostname', 'w')", "Permission denied"),
])
def test_limits_stop_the_code_with_a_reason(code, reason):
    result = run_python(code, timeout=10, cpu_seconds=1, file_kb=1024, disk_mb=16)
    assert not result.ok and reason in result.reason + result.stderr, (result.reason, result.stderr[-500:])


def test_a_timeout_kills_the_whole_process_group_and_the_caller_goes_on():
    start = time.time()
    result = run_python("import time\ntime.sleep(60)", timeout=1)
    assert not result.ok and "timed out" in result.reason and time.time() - start < 10


def test_either_time_limit_gives_the_same_words():
    # a busy loop stopped by its CPU seconds (the kernel's limit) and a sleep stopped by the wall clock
    # (ours), under the same limits: which one fires first depends on the machine's load, and a run feeds
    # the text back into its next prompts, so both read the same
    cpu = run_python("while True:\n    pass", timeout=3, cpu_seconds=1)
    wall = run_python("import time\ntime.sleep(60)", timeout=3, cpu_seconds=1)
    assert cpu.returncode != wall.returncode  # two different limits fired
    assert cpu.reason == wall.reason == "timed out (limits: 3 s, 1 s of CPU)", (cpu.reason, wall.reason)


def test_honest_python_imports_the_standard_library_and_writes_inside_its_own_directory():
    code = ("import json, math, itertools, collections, re, functools, random, heapq, threading\n"
            "open('out.txt', 'w').write(json.dumps([heapq.nsmallest(2, [5, 1, 3]), math.comb(5, 2)]))\n"
            "t = threading.Thread(target=lambda: print(open('out.txt').read()))\nt.start()\nt.join()")
    result = run_python(code)
    assert result.ok, result.reason + result.stderr
    assert result.stdout.strip() == "[[1, 3], 10]"


def test_many_sandboxes_at_once_leave_the_caller_running():
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_python("while True: pass", timeout=2,
                                                                         cpu_seconds=1))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and not any(r.ok for r in results)
