"""General Python in a fresh interpreter that confines itself before the code runs (see `isolation.py`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from selfevolve.sandbox import isolation


@dataclass
class ProcessResult:
    ok: bool
    stdout: str
    stderr: str
    reason: str  # "" when ok; otherwise why it was stopped, failed or never ran
    returncode: int
    isolation: str  # the layers that confined it, e.g. "landlock-7+seccomp+namespaces"; "" if it never ran


def run_python(code: str, *, timeout: float = 5.0, cpu_seconds: int = 5, memory_mb: int = 512,
               file_kb: int = 1024, disk_mb: int = 64, max_output: int = 65536) -> ProcessResult:
    """Run `code` in a fresh, confined interpreter; never raises for anything the code does."""
    limits = [str(cpu_seconds), str(memory_mb * 2**20), str(file_kb * 1024), str(disk_mb * 2**20)]
    # whichever time limit fires first (that depends on the machine's load), the same words: the same code
    # must get the same error text, which a run feeds back into its next prompts
    stopped = f"timed out (limits: {timeout} s, {cpu_seconds} s of CPU)"
    with tempfile.TemporaryDirectory(prefix="selfevolve-sandbox-") as workdir:
        env = {"PYTHONHASHSEED": "0", "HOME": workdir, "TMPDIR": workdir}
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", isolation.__file__, *limits], cwd=workdir, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as err:
            return ProcessResult(False, "", "", f"could not start the sandbox: {err}", -1, "")
        try:
            out, err = proc.communicate(code.encode(errors="replace"), timeout=timeout)
            reason = ""
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group, whatever it is doing
            out, err = proc.communicate()
            reason = stopped
    stdout, stderr = (data[:max_output].decode(errors="replace") for data in (out, err))
    first, _, stderr = stderr.partition("\n") if stderr.startswith("sandbox: ") else ("", "", stderr)
    layers = first.removeprefix("sandbox: ")
    if not reason and proc.returncode == -signal.SIGXCPU:
        reason = stopped
    if not reason and proc.returncode != 0:
        reason = _reason(proc.returncode, stderr)
    return ProcessResult(not reason, stdout, stderr, reason, proc.returncode, layers)


def _reason(returncode: int, stderr: str) -> str:
    if returncode == isolation.UNAVAILABLE and stderr.startswith("sandbox unavailable"):
        return stderr.strip().splitlines()[0]
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return {"SIGKILL": "killed (CPU or memory limit)",
                "SIGXFSZ": "file size limit", "SIGSYS": "a forbidden system call"}.get(name, f"killed by {name}")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
    if "MemoryError" in last:
        return "memory limit"
    return "file size limit" if "File too large" in last else last[:300]
