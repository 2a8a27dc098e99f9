"""Sums up `perf script -F comm,tid,ip,sym,dso` of bench/profile-agent (stdin).

Each sample (50 us of CPU) is put under what the CPU was doing: the agent's own
code, or the system call, page fault, softirq or kernel thread the kernel
stack shows; then the hottest functions of the agent and of the kernel.
perf's own process is left out.
"""

import collections
import re
import sys

SAMPLE_MS = 0.05
FRAME = re.compile(r"\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def samples(lines):
    cur = None
    for line in lines:
        if not line.strip():
            if cur:
                yield cur
            cur = None
        elif not line[0].isspace():
            cur = {"comm": " ".join(line.split()[:-1]), "frames": []}
        elif cur is not None:
            m = FRAME.match(line)
            if m:
                cur["frames"].append((m.group(2), m.group(3)))
    if cur:
        yield cur


def in_kernel(dso):
    return "kernel" in dso or dso.startswith("[")


def category(frames):
    if not in_kernel(frames[0][1]):
        return "agent code (user)"
    for name, _ in frames:
        for prefix in ("__x64_sys_", "__do_sys_"):
            if name.startswith(prefix):
                return "syscall " + name[len(prefix):]
        if name in ("asm_exc_page_fault", "exc_page_fault"):
            return "page faults"
        if name in ("handle_softirqs", "__do_softirq", "run_ksoftirqd"):
            return "softirq (network receive, RCU, timers)"
        if name in ("ret_from_fork", "kthread", "worker_thread"):
            return "kernel threads"
    return "kernel, other"


def main():
    kinds = collections.Counter()
    user = collections.Counter()
    kernel = collections.Counter()
    for s in samples(sys.stdin):
        if not s["frames"] or s["comm"].startswith(("ld.so", "perf")):
            continue
        kinds[category(s["frames"])] += 1
        name, dso = s["frames"][0]
        (kernel if in_kernel(dso) else user)[name] += 1
    total = sum(kinds.values())
    if not total:
        sys.exit("profile-summary: no samples")
    print(f"{total * SAMPLE_MS:.1f} ms of CPU sampled while the agent ran")
    for title, counter, n in (
        ("by activity", kinds, 20),
        ("hottest agent functions", user, 25),
        ("hottest kernel functions", kernel, 20),
    ):
        print(f"\n{title}:")
        for key, v in counter.most_common(n):
            print(f"  {v * SAMPLE_MS:7.1f} ms  {100 * v / total:5.1f}%  {key[:100]}")


main()
