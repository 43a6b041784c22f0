#!/usr/bin/env bash
# scripts/bench's pairs on a running control plane (issue 16), on a harness cluster of
# their own (`scripts/cluster up --checkpointer`: real etcd, the testkit's doubles of
# the api-server, kubelet, controller-manager and scheduler, and the real `kubeboot
# checkpoint` as the pod-checkpointer DaemonSet), torn down on exit:
#   (4) `kubeboot ensure` on the healthy node, the command the skewed-clock drill runs
#       (scripts/drill, without its clock skew): once to check that it says
#       {"outcome": "healthy"} (a figure of anything else means nothing), with its peak
#       RSS into OUT_DIR/rss.tsv; then RUNS times under hyperfine, into OUT_DIR/ensure.json.
#   (5) the checkpointer idling: 20 more pods it tracks (a Deployment in kube-system,
#       annotated checkpointer.alpha.coreos.com/checkpoint=true), and once it has saved
#       their checkpoints, its RSS and CPU over IDLE_SECONDS (scripts/lib/proc-idle.py),
#       into OUT_DIR/checkpointer-idle.json.
#
#   bench-cluster.sh OUT_DIR BIN_DIR RUNS IDLE_SECONDS
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/lib/cluster.sh"
[ $# -eq 4 ] || { echo "usage: bench-cluster.sh OUT_DIR BIN_DIR RUNS IDLE_SECONDS" >&2; exit 2; }
out=$1 bin=$2 runs=$3 idle=$4

dir=$(mktemp -d /tmp/kubeboot-bench-cluster.XXXXXX)
finish() {
  local rc=$?
  "$root/scripts/cluster" down "$dir" >/dev/null 2>&1 || echo "bench-cluster: scripts/cluster down $dir reported stray processes" >&2
  if [ $rc -ne 0 ]; then
    echo "bench-cluster FAILED (the cluster's dir: $dir)" >&2
    for f in "$dir"/up.log "$dir"/logs/*.log; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -15 "$f" >&2; }; done
  else
    rm -rf "$dir"
  fi
  exit $rc
}
trap finish EXIT
# run CMD...: CMD in the background, waited for: bash runs a trap only between
# foreground commands, so a TERM (scripts/bench's exit) would wait out a 10-minute
# hyperfine; `wait` is interrupted at once, and the trap stops CMD.
child=
run() { "$@" & child=$!; wait "$child"; }
trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 130' INT TERM

say "a harness cluster for pairs 4 and 5 (scripts/cluster up --checkpointer)"
KUBEBOOT_BIN_DIR=$bin run "$root/scripts/cluster" up "$dir" --checkpointer >/dev/null 2>"$dir/up.log" \
  || die "scripts/cluster up failed"
load_env

# (4) As the skewed-clock drill runs it: kensure (scripts/lib/cluster.sh) with these args.
kensure_cmd 1 --etcd-servers "$etcd_url" --boot-grace 20s -o json
say "(4) kubeboot ensure on the healthy node, checked once, then $runs runs"
/usr/bin/time -f %M -o "$dir/ensure.rss" "${ensure_cmd[@]}" >"$dir/ensure.json" 2>"$dir/ensure.log" \
  || { cat "$dir/ensure.log" >&2; die "ensure exited non-zero on the healthy cluster: ${ensure_cmd[*]}"; }
python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != {"outcome": "healthy"})' "$dir/ensure.json" \
  || { cat "$dir/ensure.json" "$dir/ensure.log" >&2; die "ensure did not say {\"outcome\": \"healthy\"}: no figure"; }
printf 'ensure\tkubeboot ensure\t%s\n' "$(tail -n1 "$dir/ensure.rss")" >>"$out/rss.tsv"
# For the table: the command, its dirs named as in cluster.sh.
echo "${ensure_cmd[*]}" | sed "s#$dir/nodes/master-1#NODE#g; s#$dir#DIR#g; s#$bin/##g" >"$out/ensure.cmd"
# -N: no shell between hyperfine and ensure; the words are quoted for hyperfine's parser.
run hyperfine -N --runs "$runs" --output=null --style basic --export-json "$out/ensure.json" \
  -n "kubeboot ensure (healthy node)" "${ensure_cmd[*]@Q}" >&2

# (5) The checkpointer checkpoints the annotated pods of --checkpoint-namespaces
# (default kube-system) that run on its node.
say "(5) the checkpointer idling: 20 more pods to track, then a ${idle} s window"
kubectl_ apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench-tracked, namespace: kube-system}
spec:
  replicas: 20
  selector: {matchLabels: {app: bench-tracked}}
  template:
    metadata:
      labels: {app: bench-tracked}
      annotations: {checkpointer.alpha.coreos.com/checkpoint: "true"}
    spec:
      containers: [{name: pause, image: registry.k8s.io/pause:3.10}]
YAML
saved=$(node_root 1)/etc/kubernetes/checkpoints/saved
tracked() { [ "$(find "$saved" -name 'kubeboot-checkpoint_kube-system_bench-tracked-*' | wc -l)" -ge 20 ]; }
wait_until 180 "the checkpointer to save the 20 pods' checkpoints" tracked \
  || { ls "$saved" >&2; die "the checkpointer did not checkpoint the 20 pods"; }
run python3 "$root/scripts/lib/proc-idle.py" "$(node_root 1)/var/run/kubeboot/checkpointer.lock" "$idle" "$saved" \
  >"$out/checkpointer-idle.json"
tracked || die "the 20 pods' checkpoints went away during the window"
