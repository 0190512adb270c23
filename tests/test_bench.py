"""bench/run.py's readings of other tools' output: a wrong parse would print wrong figures."""

from __future__ import annotations

import os

from bench.run import Counters, self_time, syscall_counts, task_counters

# strace -c -f, as strace 6 prints it (the errors column is empty on most rows).
STRACE_TABLE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.55    0.117000          11     10219           write
 32.29    0.093150           9     10206         1 read
 19.76    0.057008       57008         1         1 restart_syscall
  5.68    0.016383          12      1309           epoll_pwait
------ ----------- ----------- --------- --------- ----------------
100.00    0.283541          13     21735         3 total
"""


def test_strace_table_is_read_per_call_without_its_total() -> None:
    assert syscall_counts(STRACE_TABLE) == {"write": 10219, "read": 10206, "restart_syscall": 1, "epoll_pwait": 1309}


def test_collapsed_stacks_give_self_time_per_innermost_frame() -> None:
    collapsed = "main;serve;predict 30\nmain;serve;send 10\nmain;other;predict 5\n 2\n"
    assert self_time(collapsed) == (47, [("predict", 35), ("send", 10), ("(native or idle)", 2)])


def test_counters_see_this_process_fault_pages_in() -> None:
    before = task_counters([os.getpid()])
    written = [b"\x01" * (1 << 20) for _ in range(8)]  # 8 MiB of fresh pages, written
    grown = task_counters([os.getpid()]) - before
    assert len(written) == 8
    assert grown.minor_faults >= 8 * (1 << 20) // os.sysconf("SC_PAGE_SIZE") // 2, grown
    assert Counters(4, 0, 2, 0).per(2) == (
        "2.000 minor faults, 0.000 major faults, 1.000 voluntary switches, 0.000 forced switches"
    )
