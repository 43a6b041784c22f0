#!/usr/bin/env python3
"""The checkpointer's cost while it idles, for scripts/bench (pair 5).

    proc-idle.py LOCK_FILE SECONDS SAVED_DIR

Finds every `kubeboot checkpoint` process started with --lock-file=LOCK_FILE: the one
holding its flock (/proc/locks) does the work, the others (its own checkpoint's copy)
wait for the lock as standbys. Over SECONDS it reads, for each, VmRSS once a second and
VmHWM, RssAnon and RssFile at the end (/proc/PID/status), and utime+stime at both ends (/proc/PID/stat):
CPU % = ticks / (CLK_TCK × seconds) × 100. Prints JSON; exits non-zero when no process
holds the lock, or one exits or is restarted during the window.
"""
import json
import os
import sys
import time


def holder(lock):
    st = os.stat(lock)
    for line in open("/proc/locks"):
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 17458 fe:00:10012953 0 EOF"; "1: -> FLOCK …" waits.
        if len(f) < 6 or f[1] != "FLOCK":
            continue
        major, minor, ino = f[5].split(":")
        if (int(ino), int(major, 16), int(minor, 16)) == (st.st_ino, os.major(st.st_dev), os.minor(st.st_dev)):
            return int(f[4])
    sys.exit(f"proc-idle: no process holds the flock on {lock}")


def checkpointers(lock):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv]
        if (len(argv) > 1 and os.path.basename(argv[0]) == "kubeboot" and argv[1] == "checkpoint"
                and f"--lock-file={lock}" in argv):
            pids.append(int(d))
    return sorted(pids)


def stat(pid):
    """(utime + stime, starttime) in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime 14, stime 15, starttime 22.
    return int(fields[11]) + int(fields[12]), int(fields[19])


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def main():
    lock, seconds, saved = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    working = holder(lock)
    pids = checkpointers(lock)
    if working not in pids:
        sys.exit(f"proc-idle: pid {working} holds {lock} but is not a kubeboot checkpoint of it (found: {pids})")
    before = len(os.listdir(saved))
    tck = os.sysconf("SC_CLK_TCK")
    try:
        start = {p: stat(p) for p in pids}
        t0 = time.monotonic()
        deadline = t0 + seconds
        rss = {p: [] for p in pids}
        while True:
            for p in pids:
                rss[p].append(status_kib(p, "VmRSS"))
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(min(1.0, deadline - now))
        end = {p: stat(p) for p in pids}
        elapsed = time.monotonic() - t0
        hwm = {p: status_kib(p, "VmHWM") for p in pids}
        split = {p: (status_kib(p, "RssAnon"), status_kib(p, "RssFile")) for p in pids}
    except (OSError, KeyError) as e:
        sys.exit(f"proc-idle: a checkpointer went away during the window: {e}")
    procs = []
    for p in pids:
        if end[p][1] != start[p][1]:
            sys.exit(f"proc-idle: pid {p} was restarted during the window")
        ticks = end[p][0] - start[p][0]
        procs.append({
            "role": "working (holds the lock)" if p == working else "standby (waits for the lock)",
            "pid": p,
            "ticks": ticks,
            "cpu_percent": ticks / (tck * elapsed) * 100,
            "rss_kib_mean": sum(rss[p]) / len(rss[p]),
            "rss_kib_max": max(rss[p]),
            "hwm_kib": hwm[p],
            # At the end: its own memory, and the pages of files it maps (mostly the
            # binary's, which every kubeboot process on the host shares).
            "rss_anon_kib": split[p][0],
            "rss_file_kib": split[p][1],
        })
    json.dump({"seconds": elapsed, "clk_tck": tck, "samples": len(rss[working]), "saved_before": before,
               "saved_after": len(os.listdir(saved)), "processes": procs}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
