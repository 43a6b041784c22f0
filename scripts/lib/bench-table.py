#!/usr/bin/env python3
"""scripts/bench's report: one markdown table per measured pair, from hyperfine's JSON
exports and the peak RSS list in OUT_DIR, with the commit and the date. Ratios are
within one hyperfine run (one file, one etcd), never across runs. Then `ensure` on a
healthy node and the checkpointer idling (scripts/lib/bench-cluster.sh), the drills'
RTOs from RTO_FILE (scripts/lib/rto.sh), and OUT_DIR/per-key.tsv for bench-plot.py.

    bench-table.py OUT_DIR COMMIT DATE PROFILE [--rto RTO_FILE] [--quick]
"""
import argparse
import glob
import json
import os

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


# Issue 16's targets for the pairs on a running cluster.
ENSURE_TARGET_S = 0.1
IDLE_TARGET_RSS_MB = 15
IDLE_TARGET_CPU = 0.1


def verdict(met, quick):
    return "– (--quick claims nothing)" if quick else ("met" if met else "**missed**")


def ensure_table(out, rss, quick):
    path = os.path.join(out, "ensure.json")
    if not os.path.exists(path):
        return
    r = json.load(open(path))["results"][0]
    print("### `kubeboot ensure` on a healthy node\n")
    cmd = open(os.path.join(out, "ensure.cmd")).read().strip().replace(" --", " \\\n    --")
    print(f"As the skewed-clock drill runs it (without the skew), on a harness cluster with "
          f"the checkpointer (DIR is the cluster's, NODE master-1's root), checked once to "
          f"say `{{\"outcome\": \"healthy\"}}`, then timed by hyperfine (`-N --runs "
          f"{len(r['times'])}`):\n\n```\n{cmd}\n```\n")
    print("| runs | median | mean ± σ | min … max | CPU per run (user + sys) | peak RSS | target: median < 100 ms |")
    print("|---|---|---|---|---|---|---|")
    kib = rss.get(("ensure", "kubeboot ensure"))
    # One unit for the row, the median's.
    t = (lambda x: f"{x:.2f} s") if r["median"] >= 1 else (lambda x: f"{x * 1000:.1f} ms")
    print(f"| {len(r['times'])} | {t(r['median'])} | {t(r['mean'])} ± {t(r['stddev'] or 0)} "
          f"| {t(r['min'])} … {t(r['max'])} | {(r['user'] + r['system']) * 1000:.0f} ms "
          f"| {f'{kib / 1024:.0f} MiB' if kib else '–'} "
          f"| {verdict(r['median'] < ENSURE_TARGET_S, quick)} |\n")


def idle_table(out, quick):
    path = os.path.join(out, "checkpointer-idle.json")
    if not os.path.exists(path):
        return
    d = json.load(open(path))
    print(f"### The checkpointer idling: {d['saved_after']} checkpoints, {d['seconds']:.0f} s\n")
    print(f"The 20 pods bench-cluster.sh adds, the api-server and the checkpointer itself: "
          f"{d['saved_before']} checkpoints saved before the window, {d['saved_after']} after; "
          f"RSS read {d['samples']} times (once a second), CPU from utime+stime at both ends "
          f"(CLK_TCK {d['clk_tck']}).\n")
    print("| process | CPU | ticks | RSS mean | RSS max | VmHWM | RSS at the end: anon + file "
          "| target: RSS < 15 MB | CPU < 0.1 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in d["processes"]:
        mib = lambda kib: f"{kib / 1024:.1f} MiB"
        working = p["role"].startswith("working")
        rss_ok = verdict(p["rss_kib_max"] * 1024 < IDLE_TARGET_RSS_MB * 1e6, quick) if working else "–"
        cpu_ok = verdict(p["cpu_percent"] < IDLE_TARGET_CPU, quick) if working else "–"
        print(f"| {p['role']} | {p['cpu_percent']:.3f} % | {p['ticks']} | {mib(p['rss_kib_mean'])} "
              f"| {mib(p['rss_kib_max'])} | {mib(p['hwm_kib'])} "
              f"| {mib(p['rss_anon_kib'])} + {mib(p['rss_file_kib'])} | {rss_ok} | {cpu_ok} |")
    print("\nanon: the process's own memory; file: pages of the files it maps, mostly the "
          "binary's text (kubeboot-checkpoint, or kubeboot when that is not installed), "
          "shared with every process running it.\n")


def rto_table(path, commit):
    print("### The drills' RTOs\n")
    if not path or not os.path.exists(path):
        print(f"No drill has run on this checkout: no {path} (scripts/test's drills, "
              "scripts/drill and scripts/machine-drill write it).\n")
        return
    header, runs = "", {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("#"):
            header = line.lstrip("# ")
        elif line:
            name, seconds, at = line.split("\t")
            runs.setdefault(name, []).append((float(seconds), at))
    if not runs:
        print(f"{path} holds no RTO yet{f' ({header})' if header else ''}.\n")
        return
    commits = sorted({at for rs in runs.values() for _, at in rs})
    here = "" if commits == [commit] else f"; this checkout is at {commit}"
    print(f"From the last drill run on this checkout, commit {', '.join(commits)}{here}"
          f"{f' ({header})' if header else ''}: `{path}`.\n")
    print("| drill | RTO | commit |")
    print("|---|---|---|")
    for name in sorted(runs):
        seconds, at = runs[name][-1]
        more = f" (the last of {len(runs[name])} runs)" if len(runs[name]) > 1 else ""
        print(f"| `{name}` | {seconds:.1f} s{more} | {at} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("commit")
    ap.add_argument("date")
    ap.add_argument("profile")
    ap.add_argument("--rto")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    out, commit, date, profile, quick = a.out, a.commit, a.date, a.profile, a.quick
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
                    row += f" {kib / 1024:.0f} MiB ({kib * 1024 / size:.3f}× the file) |"
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
        print("\nPlotted in benchmarks.svg, beside this file.\n")
    with open(os.path.join(out, "per-key.tsv"), "w") as f:
        for cmd, name, us in per_key:
            f.write(f"{cmd}\t{keys_of(name)}\t{name}\t{us}\n")
    ensure_table(out, rss, quick)
    idle_table(out, quick)
    rto_table(a.rto, commit)


if __name__ == "__main__":
    main()
