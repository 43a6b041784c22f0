#!/usr/bin/env python3
"""scripts/bench's report: one markdown table per measured pair, from hyperfine's JSON
exports and the peak RSS list in OUT_DIR, with the commit and the date. Ratios are
within one hyperfine run (one file, one etcd), never across runs.

    bench-table.py OUT_DIR COMMIT DATE PROFILE [--quick]
"""
import glob
import json
import os
import sys

# Per group: the reference every row is divided by, and (reading a backup) the least
# work that verifies a snapshot.
REFERENCE = {
    "read": "etcdutl restore + etcd + etcdctl get",
    "live": "etcdctl get --prefix /registry/ -w protobuf",
    "backup": "etcdctl snapshot save",
}
FLOOR = "openssl dgst -sha256"
TITLE = {
    "read": "Reading a backup",
    "live": "Reading a live etcd",
    "backup": "Taking a backup",
}


def ms(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def keys_of(name):
    return int(name.rsplit("-", 1)[1])


def main():
    out, commit, date, profile = sys.argv[1:5]
    quick = "--quick" in sys.argv[5:]
    rss = {}
    with open(os.path.join(out, "rss.tsv")) as f:
        for line in f:
            name, what, value = line.rstrip("\n").split("\t")
            rss[(name, what)] = int(value)
    print(f"scripts/bench{' --quick' if quick else ''} of {commit}, {date}, {profile} build\n")
    per_key = []
    for kind in ("read", "live", "backup"):
        paths = glob.glob(os.path.join(out, f"{kind}-*.json"))
        order = lambda p: (os.path.basename(p).split("-")[1], keys_of(p[:-5]))
        for path in sorted(paths, key=order):
            name = os.path.basename(path)[len(kind) + 1 : -5]
            results = {r["command"]: r for r in json.load(open(path))["results"]}
            ref = results[REFERENCE[kind]]["mean"]
            floor = results.get(FLOOR, {}).get("mean")
            size = rss.get((name, "snapshot bytes"))
            head = f"### {TITLE[kind]}: {name}"
            if size:
                head += f" ({size / 2**20:.1f} MiB snapshot)"
            print(head + "\n")
            cols = "| command | mean ± σ | × reference |" + (" × openssl |" if floor else "") + " peak RSS |"
            print(cols)
            print("|" + "---|" * (cols.count("|") - 1))
            for cmd, r in results.items():
                row = f"| {cmd} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {r['mean'] / ref:.3f} |"
                if floor:
                    row += f" {r['mean'] / floor:.2f} |"
                kib = rss.get((name, cmd)) or (rss.get((name, "etcd (restored, serving the get)")) if cmd == REFERENCE["read"] else None)
                if kib and size:
                    row += f" {kib / 1024:.0f} MiB ({kib * 1024 / size:.2f}× the file) |"
                elif kib:
                    row += f" {kib / 1024:.0f} MiB |"
                else:
                    row += " – |"
                print(row)
                if kind in ("read", "live") and cmd.startswith("kubeboot"):
                    per_key.append((cmd, name, r["mean"] / keys_of(name) * 1e6))
            print()
    if per_key:
        print("### Cost per key (µs): does it grow linearly?\n")
        print("| command | set | µs per key |")
        print("|---|---|---|")
        for cmd, name, us in per_key:
            print(f"| {cmd} | {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
