"""The code-execution tool's sandbox (``tools/sandbox.py``): ordinary code runs, and every escape tried
here (read or write outside, a socket, a fork bomb, a new program, threads, memory, a loop, ctypes) is
stopped by the kernel, with the attempt's error in the child's stderr."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from rewardlab.tools.sandbox import run_python


def test_ordinary_code_runs_and_may_use_its_own_folder():
    result = run_python("import math\nopen('x.txt', 'w').write('7')\nprint(math.factorial(5), open('x.txt').read())")
    assert result.ok and result.stdout == "120 7\n"


def test_files_outside_its_folder_can_be_neither_read_nor_written(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's data")
    read = run_python(f"print(open({str(secret)!r}).read())")
    assert not read.ok and "the user's data" not in read.stdout and "PermissionError" in read.stderr
    write = run_python(f"open({str(tmp_path / 'planted.txt')!r}, 'w').write('x')")
    assert "PermissionError" in write.stderr and not (tmp_path / "planted.txt").exists()
    listed = run_python(f"import os; print(os.listdir({os.path.dirname(__file__)!r}))")
    assert "PermissionError" in listed.stderr and "test_sandbox.py" not in listed.stdout


def test_no_socket_can_be_opened_not_even_to_this_machine():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(0.5)
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        assert "PermissionError" in result.stderr
        with pytest.raises(TimeoutError):
            server.accept()  # nothing connected


def test_a_fork_bomb_fails_at_its_first_fork():
    before = len(os.listdir("/proc"))
    result = run_python("import os\nwhile True:\n    os.fork()", timeout_s=5)
    assert not result.timed_out and "PermissionError" in result.stderr
    assert len(os.listdir("/proc")) < before + 20


def test_no_other_program_and_no_thread_can_start():
    assert "PermissionError" in run_python("import subprocess; subprocess.run(['ls', '/'])").stderr
    assert "PermissionError" in run_python("import os; os.execv('/bin/sh', ['sh'])").stderr
    assert "can't start new thread" in run_python("import threading; threading.Thread(target=print).start()").stderr


def test_ctypes_cannot_call_the_refused_syscalls_directly():
    code = textwrap.dedent(
        """
        import ctypes, ctypes.util, os
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.syscall(41, 2, 1, 0), os.strerror(ctypes.get_errno()))  # socket(AF_INET, SOCK_STREAM) on x86_64
        print(libc.fork(), os.strerror(ctypes.get_errno()))
        """
    )
    result = run_python(code)
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["-1 Operation not permitted", "-1 Operation not permitted"]


def test_memory_and_time_are_bounded():
    assert "MemoryError" in run_python("x = bytearray(10**10)", memory_mb=256).stderr
    looped = run_python("while True:\n    pass", timeout_s=1)
    assert looped.timed_out and looped.returncode is None and not looped.ok
