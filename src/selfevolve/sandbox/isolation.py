"""Confine this interpreter before it runs model-written code: the child side of `run_python`.

Run as `python -I -S isolation.py CPU_S MEMORY_B FILE_B DISK_B`; it confines itself, reads the code
from stdin and runs it. Everything here is a kernel mechanism, enforced whatever the code does:

- rlimits: CPU seconds, address space, size of one file, 64 open files, no core dumps.
- namespaces (where the kernel lets an unprivileged process make them): a user namespace, so even
  root outside holds no privilege over the machine; an empty network namespace; a mount namespace
  with a size-limited tmpfs over the working directory, so the code cannot fill the disk.
- Landlock (Linux 5.13+): the file system is readable only under the standard library, the
  directories of the libraries already mapped into this process and `/etc/ld.so.cache`, and
  writable (create, remove, rename, link, truncate) only under the working directory; TCP bind and
  connect are refused (Landlock ABI 4+), as are signals and abstract sockets that leave the sandbox
  (ABI 6+).
- seccomp: no new process or program (fork, vfork, exec, clone without CLONE_THREAD), no socket,
  no ptrace or access to other processes' memory, no chmod, chown, timestamp or xattr change (which
  Landlock does not cover), no raising of the limits, no mount, namespace, module, clock, reboot,
  io_uring, bpf or keyring call. Threads still work.

Without Landlock and seccomp (another OS, an older kernel, another architecture than x86_64) the
child refuses to run anything: exit code UNAVAILABLE with the reason on stderr.

Not stopped: reading metadata (stat) of paths outside, reading the machine's CPU count and clock,
and burning its own CPU and memory up to the limits.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import sys
import sysconfig

UNAVAILABLE = 97  # exit code: the sandbox could not confine itself, so nothing ran

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _fail(why: str):
    sys.stderr.write(f"sandbox unavailable: {why}\n")
    sys.stderr.flush()
    os._exit(UNAVAILABLE)


def _call(result: int, what: str) -> int:
    if result < 0:
        _fail(f"{what}: {os.strerror(ctypes.get_errno())}")
    return result


# ---- namespaces -------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_NOSUID, MS_NODEV = 2, 4


def enter_namespaces(disk_bytes: int) -> bool:
    """A user, network and mount namespace with a tmpfs over the working directory; False if refused."""
    uid, gid, workdir = os.getuid(), os.getgid(), os.getcwd()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) != 0:
        return False
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    options = f"size={disk_bytes},mode=0700".encode()
    _call(_libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount tmpfs")
    os.chdir(workdir)  # onto the new mount
    return True


# ---- Landlock ---------------------------------------------------------------------------------

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
RULE_PATH_BENEATH = 1
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_TCP = (1 << 0) | (1 << 1)  # bind, connect (ABI 4+)
SCOPES = (1 << 0) | (1 << 1)  # abstract unix sockets, signals (ABI 6+)
PR_SET_NO_NEW_PRIVS = 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none."""
    return max(0, _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))


def readable_paths() -> list[str]:
    """The interpreter's own files: its standard library and the directories of the libraries it has mapped."""
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")} | {"/etc/ld.so.cache"}
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                paths.add(os.path.dirname(fields[5].strip()))
    return sorted(p for p in paths if os.path.exists(p))


def restrict_file_system(abi: int, workdir: str) -> None:
    everything = FS_RIGHTS_BY_ABI[min(abi, 5)]
    attr = _RulesetAttr(everything, NET_TCP if abi >= 4 else 0, SCOPES if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _call(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
    read = EXECUTE | READ_FILE | READ_DIR
    for path, rights in [(p, read) for p in readable_paths()] + [(workdir, everything)]:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        if not os.path.isdir(path):
            rights &= EXECUTE | READ_FILE | WRITE_FILE
        rule = _PathBeneath(rights, fd)
        _call(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule),
                            ctypes.c_uint32(0)), f"landlock_add_rule {path}")
        os.close(fd)
    _call(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _call(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    os.close(ruleset)


# ---- seccomp ----------------------------------------------------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
# x86_64 numbers of every call refused with EPERM (see the module docstring for why each group)
REFUSED = {
    "processes": [57, 58, 59, 322],  # fork vfork execve execveat
    "sockets": [41, 53],  # socket socketpair
    "other processes": [62, 200, 234, 129, 297, 424, 434, 438, 101, 310, 311],  # kill tkill tgkill sigqueue*
    # pidfd_send_signal pidfd_open pidfd_getfd ptrace process_vm_readv/writev
    "metadata": [90, 91, 268, 452, 92, 93, 94, 260, 132, 235, 261, 280, 188, 189, 190, 197, 198, 199, 133, 259],
    "limits": [160, 302],  # setrlimit prlimit64
    "system": [165, 166, 272, 308, 161, 155, 425, 426, 427, 321, 298, 323, 248, 249, 250, 303, 304, 135,
               428, 429, 430, 431, 432, 433, 442, 169, 170, 171, 164, 227, 305, 159, 175, 313, 176, 246, 320,
               167, 168, 163, 179, 103, 172, 173, 153],
}
SYS_CLONE, SYS_CLONE3, CLONE_THREAD = 56, 435, 0x00010000
RET_KILL, RET_ALLOW, RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Filter))]


def seccomp_program() -> list[tuple[int, int, int, int]]:
    """The BPF filter: (code, jump if true, jump if false, k) rows; jumps count rows skipped."""
    refused = sorted({nr for group in REFUSED.values() for nr in group})
    # rows: arch check (3), load nr, x32 check, one row per refused call, then at c = 5 + n:
    # c clone?  c+1 load flags  c+2 CLONE_THREAD?  c+3 clone3?  c+4 allow  c+5 EPERM  c+6 ENOSYS  c+7 kill
    n = len(refused)
    rows = [(LD_ABS, 0, 0, 4), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, RET_KILL), (LD_ABS, 0, 0, 0),
            (JGE, n + 7, 0, 0x40000000)]
    rows += [(JEQ, n - i + 4, 0, nr) for i, nr in enumerate(refused)]
    rows += [(JEQ, 0, 2, SYS_CLONE), (LD_ABS, 0, 0, 16), (JSET, 1, 2, CLONE_THREAD), (JEQ, 2, 0, SYS_CLONE3),
             (RET, 0, 0, RET_ALLOW), (RET, 0, 0, RET_ERRNO | EPERM), (RET, 0, 0, RET_ERRNO | ENOSYS),
             (RET, 0, 0, RET_KILL)]
    return rows


def install_seccomp() -> None:
    rows = seccomp_program()
    table = (_Filter * len(rows))(*[_Filter(*row) for row in rows])
    program = _Program(len(rows), table)
    _call(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _call(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


# ---- the child --------------------------------------------------------------------------------


def confine(cpu_seconds: int, memory: int, file_size: int, disk: int) -> str:
    """Apply every layer or exit UNAVAILABLE; returns the layers applied, for the record."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        _fail(f"needs Linux on x86_64 (this is {sys.platform} on {platform.machine()})")
    abi = landlock_abi()
    if abi < 1:
        _fail("this kernel has no Landlock (Linux 5.13+ with landlock enabled)")
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, SIGKILL a second later
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, file_size),
                         (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    namespaces = enter_namespaces(disk)
    restrict_file_system(abi, os.getcwd())
    install_seccomp()
    return f"landlock-{abi}+seccomp" + ("+namespaces" if namespaces else "")


if __name__ == "__main__":
    layers = confine(*map(int, sys.argv[1:5]))
    sys.stderr.write(f"sandbox: {layers}\n")
    source = sys.stdin.read()
    del layers
    exec(compile(source, "<sandbox>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
