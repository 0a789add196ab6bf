"""Run one Python file confined: the child side of ``tools.sandbox`` (it is run as a script, standard
library only, before any of the user's code).

    python -I -S confine.py SETTINGS_JSON

In order, before the user's file runs (none of it can be undone by that code):
1. resource limits: address space, CPU seconds, size of written files, open files, processes;
2. Landlock (Linux ≥ 5.13; kernel-enforced, unprivileged): files may be read and executed only under
   the Python installation and the system library folders, and read and written only in the work folder;
3. seccomp (kernel-enforced): no sockets, io_uring, ptrace, new processes or threads (fork, vfork,
   clone, clone3) and no execve, each failing with EPERM.
If Landlock or seccomp cannot be set up the script exits with code 97 and says why: the code never runs
unconfined.
"""

import ctypes
import json
import os
import platform
import resource
import struct
import sys

UNAVAILABLE = 97
LANDLOCK_CREATE, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT = 444, 445, 446  # the same on every architecture
READ_ACCESS = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read file, read dir
ALL_ACCESS_V1 = (1 << 13) - 1
TRUNCATE = 1 << 14  # Landlock ABI 3
# syscalls refused, by architecture: socket, ptrace, clone, fork, vfork, execve, execveat, clone3, io_uring_setup
REFUSED = {
    "x86_64": (0xC000003E, (41, 101, 56, 57, 58, 59, 322, 435, 425)),
    "aarch64": (0xC00000B7, (198, 117, 220, 221, 281, 435, 425)),
}
EPERM = 1


def fail(message: str) -> None:
    sys.stderr.write(f"sandbox unavailable: {message}\n")
    sys.exit(UNAVAILABLE)


def set_limits(settings: dict) -> None:
    memory = settings["memory_mb"] * 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, settings["cpu_seconds"]),
        (resource.RLIMIT_FSIZE, settings["file_mb"] * 1024 * 1024),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_NPROC, 1),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))


def restrict_files(libc: ctypes.CDLL, readable: list, writable: str) -> None:
    abi = libc.syscall(LANDLOCK_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        fail("Landlock is not enabled in this kernel (Linux >= 5.13 with the landlock LSM)")
    handled = ALL_ACCESS_V1 | (TRUNCATE if abi >= 3 else 0)
    ruleset = libc.syscall(LANDLOCK_CREATE, ctypes.c_char_p(struct.pack("Q", handled)), ctypes.c_size_t(8), 0)
    if ruleset < 0:
        fail(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    for path, access in [(p, READ_ACCESS) for p in readable] + [(writable, handled)]:
        if not os.path.exists(path):
            continue
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        allowed = access if os.path.isdir(path) else access & ((1 << 0) | (1 << 1) | (1 << 2) | TRUNCATE)
        rule = ctypes.c_char_p(struct.pack("=Qi", allowed, fd))  # landlock_path_beneath_attr (packed)
        if libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, rule, 0) != 0:
            fail(f"landlock_add_rule({path}): {os.strerror(ctypes.get_errno())}")
        os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        fail(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.syscall(LANDLOCK_RESTRICT, ruleset, 0) != 0:
        fail(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    os.close(ruleset)


def refuse_syscalls(libc: ctypes.CDLL) -> None:
    machine = platform.machine()
    if machine not in REFUSED:
        fail(f"no seccomp filter for the {machine} architecture")
    arch, numbers = REFUSED[machine]

    def op(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    program = [op(0x20, 0, 0, 4), op(0x15, 1, 0, arch), op(0x06, 0, 0, 0x80000000), op(0x20, 0, 0, 0)]
    for number in numbers:  # jeq nr: return ERRNO(EPERM), else next
        program += [op(0x15, 0, 1, number), op(0x06, 0, 0, 0x00050000 | EPERM)]
    program.append(op(0x06, 0, 0, 0x7FFF0000))  # allow
    code = ctypes.create_string_buffer(b"".join(program))
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(code))  # struct sock_fprog
    if libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        fail(f"seccomp: {os.strerror(ctypes.get_errno())}")


def main() -> None:
    settings = json.loads(sys.argv[1])
    folder = settings["folder"]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    set_limits(settings)
    restrict_files(libc, settings["readable"], folder)
    refuse_syscalls(libc)
    os.chdir(folder)
    source = os.path.join(folder, "main.py")
    with open(source, encoding="utf-8") as file:
        code = compile(file.read(), source, "exec")
    sys.argv = [source]
    exec(code, {"__name__": "__main__", "__file__": source})


if __name__ == "__main__":
    main()
