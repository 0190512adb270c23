"""bench/run.py: its readings of other tools' output and its choice of CPUs: a mistake there prints wrong figures."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from bench.run import Counters, cpu_list, self_time, shared_physical_cores, sweep_cores, syscall_counts, task_counters

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
    # 8 MiB of fresh anonymous pages, small ones (a huge page would fault 512 pages in at once, and a
    # heap allocation may reuse pages this process already touched), each written once.
    page = os.sysconf("SC_PAGE_SIZE")
    with mmap.mmap(-1, 8 << 20) as fresh:
        fresh.madvise(mmap.MADV_NOHUGEPAGE)
        before = task_counters([os.getpid()])
        for offset in range(0, len(fresh), page):
            fresh[offset] = 1
        grown = task_counters([os.getpid()]) - before
    assert grown.minor_faults >= (8 << 20) // page // 2, grown
    assert Counters(4, 0, 2, 0).per(2) == (
        "2.000 minor faults, 0.000 major faults, 1.000 voluntary switches, 0.000 forced switches"
    )


def test_cpu_lists_in_the_kernels_format_are_read() -> None:
    assert cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert cpu_list("5") == {5}


def test_server_and_load_cpus_on_one_physical_core_are_named(tmp_path: Path) -> None:
    # 4 CPUs, 2 physical cores: 0+2 and 1+3 are hyperthreads (the usual cloud numbering).
    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "thread_siblings_list").write_text(siblings + "\n")
    assert shared_physical_cores({0, 1}, {2, 3}, tmp_path) == ["0+2", "1+3"]
    assert shared_physical_cores({0, 2}, {1, 3}, tmp_path) == []
    assert shared_physical_cores({0}, {1}, tmp_path / "absent") == []  # a sandbox without the topology


def test_sweep_cpus_are_the_halves_or_what_cores_names() -> None:
    sixteen = list(range(16))
    assert sweep_cores(None, sixteen, 8) == (list(range(8)), list(range(8, 16)))
    assert sweep_cores("0-3:8-11", sixteen, 4) == ([0, 1, 2, 3], [8, 9, 10, 11])
    assert sweep_cores("0,2,4,6:1,3", sixteen, 2) == ([0, 2, 4, 6], [1, 3])


@pytest.mark.parametrize(
    ("cores", "workers", "message"),
    [
        ("0-3", 2, "expected SERVER:LOAD"),
        ("0-3:x", 2, "expected SERVER:LOAD"),
        ("0-3:3-5", 2, "two separate"),
        ("0-3:16-17", 2, "two separate"),
        ("0-1:8-9", 4, "needs 4 server CPUs"),
    ],
)
def test_sweep_cpus_that_cannot_work_are_refused_by_name(cores: str, workers: int, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        sweep_cores(cores, list(range(16)), workers)


def test_footprint_reads_resident_and_proportional_memory_of_a_process_tree() -> None:
    import subprocess
    import sys
    import time

    from bench.footprint import describe, memory

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while len(processes := memory(os.getpid())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        roles = {p.pid: p.role for p in processes}
        assert roles[os.getpid()] == "parent"
        assert roles[child.pid] == "worker"
        assert all(0 < p.pss <= p.rss for p in processes)
        assert describe(processes).startswith("MB RSS (PSS): parent ")
    finally:
        child.kill()
        child.wait()
