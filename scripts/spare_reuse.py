#!/usr/bin/env python3
"""What writing the next spool segment ahead costs, two ways (README, Durability: segments are
written ahead): zeros into a new file (after the delivered segment is deleted), or zeros over
the delivered segment itself, its pages still in memory. Each round first writes and reads back
a segment, as the spool writer and a sink would, then waits WAIT seconds (the spare is asked
for when the active segment is half full: seconds after the last one was delivered); the
spare is then written as `spool/spare.rs` does, 1 MiB at a time, each piece synced. Prints the
CPU the spare's writes took (the process's user and system time) per MiB.
Usage: spare_reuse.py DIR [MIB] [ROUNDS] [WAIT]"""
import os
import resource
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 64
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
WAIT = float(sys.argv[4]) if len(sys.argv) > 4 else 5
CHUNK = 1 << 20
ZEROS = bytes(CHUNK)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def delivered(path):
    """A segment as the spool leaves it once delivered: written, synced, read back."""
    record = os.urandom(7680)
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    for _ in range(MIB * CHUNK // len(record)):
        os.write(fd, record)
    os.fdatasync(fd)
    os.close(fd)
    with open(path, "rb") as f:
        while f.read(CHUNK):
            pass


def zeros(fd):
    """The spare's writes: MIB MiB of zeros from the file's start, each MiB synced."""
    for i in range(MIB):
        os.pwrite(fd, ZEROS, i * CHUNK)
        os.fdatasync(fd)


def main():
    os.makedirs(DIR, exist_ok=True)
    seg = os.path.join(DIR, "segment")
    spare = os.path.join(DIR, "spare")
    for r in range(ROUNDS):
        for way in ("new file", "over the delivered one"):
            delivered(seg)
            if way == "new file":
                os.unlink(seg)
            else:
                os.rename(seg, spare)
            time.sleep(WAIT)
            before = cpu()
            if way == "new file":
                fd = os.open(spare, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            else:
                fd = os.open(spare, os.O_WRONLY)
            zeros(fd)
            took = cpu() - before
            os.close(fd)
            os.unlink(spare)
            print(f"round {r + 1}, {way:<24} {took / MIB * 1e3:7.2f} ms of CPU per MiB")


if __name__ == "__main__":
    main()
