#!/usr/bin/env python3
"""How often a group commit's sync stalls when other writers share the disk (README,
Benchmarks: where the half-rate p99 goes).

One thread does what the spool writer does at half the benchmark's rate: 7.5 KB written in
place into a file of zeros, then fdatasync, over and over. Beside it, for each mode, what the
benchmark's other writers do at 8,000 events/s (about 18 MB/s each):
  none     nothing else
  zeros    the spare segment: 1 MiB of zeros at a time, each synced
  sink     the file sink: 128 KiB appended at a time, each synced
  cursor   a sink's cursor, ten times a second: a new file synced, renamed, directory synced
  all      zeros, sink and cursor together (what the gateway's disk sees)
Modes alternate, ROUNDS times (default 2), SECONDS each (default 20). For each run it prints
the sync latency percentiles and how many syncs took over 5 and over 10 ms: each such sync
holds back every request waiting for that commit and every one arriving meanwhile.

Usage: fsync_interference.py DIR [SECONDS] [ROUNDS] [MODE...]
"""
import os
import sys
import threading
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
MODES = sys.argv[4:] or ["none", "zeros", "sink", "cursor", "all"]
RATE = 18e6  # bytes a second each background writer writes
SEGMENT = 64 << 20


def commits(stop, lat):
    fd = os.open(os.path.join(DIR, "commit.seg"), os.O_RDWR | os.O_CREAT, 0o600)
    if os.fstat(fd).st_size < SEGMENT:
        os.pwrite(fd, bytes(SEGMENT), 0)
    os.fdatasync(fd)
    group = os.urandom(7500)
    off = 0
    while not stop.is_set():
        t = time.perf_counter()
        os.pwrite(fd, group, off)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
        off = (off + len(group)) % (SEGMENT - len(group))
        # About 2,000 commits a second, as at half rate.
        time.sleep(0.0003)
    os.close(fd)


def paced(stop, size, step):
    while not stop.is_set():
        t = time.perf_counter()
        step()
        stop.wait(max(0.0, size / RATE - (time.perf_counter() - t)))


def zeros(stop):
    fd = os.open(os.path.join(DIR, "spare"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    piece = bytes(1 << 20)
    off = [0]

    def step():
        os.pwrite(fd, piece, off[0])
        os.fdatasync(fd)
        off[0] = (off[0] + len(piece)) % SEGMENT

    paced(stop, len(piece), step)
    os.close(fd)


def sink(stop):
    path = os.path.join(DIR, "sink.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    piece = b"y" * (128 << 10)

    def step():
        os.write(fd, piece)
        os.fdatasync(fd)

    paced(stop, len(piece), step)
    os.close(fd)


def cursor(stop):
    path = os.path.join(DIR, "cursor")
    n = 0
    while not stop.wait(0.1):
        n += 1
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"%d\n" % n)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(path + ".tmp", path)
        dfd = os.open(DIR, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)


WRITERS = {"none": [], "zeros": [zeros], "sink": [sink], "cursor": [cursor],
           "all": [zeros, sink, cursor]}


def run(mode):
    stop = threading.Event()
    lat = []
    threads = [threading.Thread(target=commits, args=(stop, lat))]
    threads += [threading.Thread(target=w, args=(stop,)) for w in WRITERS[mode]]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    lat.sort()
    n = len(lat)

    def q(p):
        return lat[min(n - 1, int(p * n))] * 1000

    over = lambda ms: sum(1 for x in lat if x > ms / 1000)
    print(f"{mode:<7} {n:6d} syncs  p50 {q(.5):.2f}  p99 {q(.99):.2f}  p99.9 {q(.999):.2f}  "
          f"max {lat[-1] * 1000:6.1f} ms   over 5 ms: {over(5):3d}   over 10 ms: {over(10):3d}",
          flush=True)


if __name__ == "__main__":
    os.makedirs(DIR, exist_ok=True)
    for _ in range(ROUNDS):
        for mode in MODES:
            run(mode)
    for name in ("commit.seg", "spare", "sink.jsonl", "cursor"):
        try:
            os.remove(os.path.join(DIR, name))
        except FileNotFoundError:
            pass
