#!/usr/bin/env python3
"""What one durable group commit costs on a disk, three ways (README, Benchmarks: segments
written ahead): 7.5 KB appended then fdatasync; written in place into zeros written and synced
before; written in place into fallocate'd (unwritten) space. Usage: fsync_modes.py DIR [N]"""
import os
import resource
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
N = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
BODY = os.urandom(5 * 1500)


def run(name, fd, in_place):
    lat = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    start = time.time()
    off = 0
    for _ in range(N):
        t = time.perf_counter()
        if in_place:
            os.pwrite(fd, BODY, off)
        else:
            os.write(fd, BODY)
        off += len(BODY)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
    took = time.time() - start
    sys_us = (resource.getrusage(resource.RUSAGE_SELF).ru_stime - before) / N * 1e6
    lat.sort()
    print(f"{name:10} {N / took:7.0f} syncs/s  p50 {lat[N // 2] * 1e3:.3f} ms  "
          f"p99 {lat[int(N * 0.99)] * 1e3:.3f} ms  system CPU {sys_us:.0f} us a sync")


def fresh(name, flags=0):
    return os.open(os.path.join(DIR, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC | flags, 0o600)


size = N * len(BODY)
fd = fresh("fsync_modes.append", os.O_APPEND)
run("appended", fd, False)
os.close(fd)
fd = fresh("fsync_modes.zeros")
zeros = bytes(1 << 20)
for _ in range(size // len(zeros) + 1):
    os.write(fd, zeros)
os.fsync(fd)
run("in place", fd, True)
os.close(fd)
fd = fresh("fsync_modes.falloc")
os.posix_fallocate(fd, 0, size)
os.fsync(fd)
run("fallocate", fd, True)
os.close(fd)
for f in ("append", "zeros", "falloc"):
    os.remove(os.path.join(DIR, f"fsync_modes.{f}"))
