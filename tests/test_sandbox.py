"""The sandbox: hostile snippets are refused or stopped with a reason, and the caller keeps running."""

import os
import socket
import threading
import time
import warnings

import pytest

from selfevolve.sandbox import run_python, run_step, run_steps

# ---- reasoning steps: the in-process evaluator


def test_steps_compute_from_earlier_names():
    result = run_steps(["apples = 3 * 4", "eaten = 5", "answer = apples - eaten", "half = answer / 2",
                        "r = round(max(half, 1) ** 2)"])
    assert result.ok and result.values["answer"] == 7 and result.values["r"] == 12


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
    assert not result.ok and result.failed_step == 1 and reason in result.error
    assert result.values == {"a": 1}  # what ran before is kept; nothing after runs


def test_model_written_code_that_python_warns_about_prints_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SyntaxWarning would now raise
        result = run_steps(["a = 1", "b = 2if a else 3"])
    assert not result.ok and "IfExp is not allowed" in result.error


def test_a_step_never_changes_the_names_it_was_given():
    names = {"a": 1}
    assert run_step("a = a + 1", names) == {"a": 2} and names == {"a": 1}


# ---- general Python: the limited child process


@pytest.mark.parametrize("code,reason", [
    ("import os\nos.system('echo hi')", "os.system is not allowed"),
    ("__import__('subprocess').run(['ls'])", "import of subprocess is not allowed"),
    ("import socket", "import of socket is not allowed"),
    ("import ctypes", "import of ctypes is not allowed"),
    ("import os\nos.fork()", "os.fork is not allowed"),
    ("import os\nwhile True:\n    os.fork()", "os.fork is not allowed"),
    ("w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
     "w.__init__.__globals__['system']('echo pwned')", "not allowed"),
    ("open('/tmp/selfevolve-sandbox-escape', 'w').write('x')", "outside the sandbox directory"),
    ("import os\nos.open('/tmp/selfevolve-sandbox-escape', os.O_WRONLY | os.O_CREAT)", "outside the sandbox"),
    ("import os\nos.remove('/etc/hostname')", "os.remove is not allowed"),
    ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))", "resource.setrlimit is not allowed"),
    ("import sys\nsys._getframe(1)", "sys._getframe is not allowed"),
    ("x = 10**10**10", "limit"),
    ("while True:\n    pass", "CPU time limit"),
    ("x = bytearray(4 * 1024**3)", "memory limit"),
    ("open('big', 'wb').write(b'x' * (8 * 1024 * 1024))", "file size limit"),
])
def test_hostile_python_is_stopped_with_a_reason(code, reason):
    result = run_python(code, timeout=10, cpu_seconds=2)
    assert not result.ok and reason in result.reason + result.stderr, (result.reason, result.stderr[-500:])
    assert "pwned" not in result.stdout
    assert not os.path.exists("/tmp/selfevolve-sandbox-escape")


def test_python_cannot_reach_the_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\nprint('connected')"
    result = run_python(code, timeout=10)
    server.close()
    assert not result.ok and "connected" not in result.stdout


def test_a_timeout_kills_the_whole_process_group_and_the_caller_goes_on():
    start = time.time()
    result = run_python("import time\ntime.sleep(60)", timeout=1)
    assert not result.ok and "timed out" in result.reason and time.time() - start < 10


def test_honest_python_runs_and_writes_inside_its_own_directory():
    code = "open('out.txt', 'w').write('42')\nprint(open('out.txt').read(), sum(range(10)))"
    result = run_python(code)
    assert result.ok, result.reason + result.stderr
    assert result.stdout.split() == ["42", "45"]


def test_many_sandboxes_at_once_leave_the_caller_running():
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_python("while True: pass", timeout=2,
                                                                         cpu_seconds=1))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and not any(r.ok for r in results)
