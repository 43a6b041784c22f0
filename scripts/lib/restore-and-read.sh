#!/usr/bin/env bash
# What an operator does today to read a backup without kubeboot (scripts/bench, pair 1b):
# `etcdutl snapshot restore` into a fresh data dir, start etcd on it, wait until it is
# healthy, then `etcdctl get --prefix /registry/ -w protobuf > /dev/null` (per resource
# past 1 GiB); then stop it.
# With RSS_FILE set, etcd's peak RSS (KiB) is written there.
#   scripts/lib/restore-and-read.sh BIN_DIR SNAPSHOT WORK_DIR
set -euo pipefail
bin=$1 snap=$2 work=$3
rm -rf "$work/restored"
"$bin/etcdutl" snapshot restore "$snap" --data-dir "$work/restored" >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) peer=$(free_port)
ep="http://127.0.0.1:$port"
# As scripts/bench's own peak RSS figures: etcd's binary read in by its faults.
[ -z "${RSS_FILE:-}" ] || python3 "$(dirname "$0")/uncache.py" "$bin/etcd"
/usr/bin/time -f %M -o "${RSS_FILE:-/dev/null}" "$bin/etcd" --data-dir "$work/restored" \
  --listen-client-urls "$ep" --advertise-client-urls "$ep" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "default=http://127.0.0.1:$peer" --quota-backend-bytes 8589934592 \
  >"$work/restored.log" 2>&1 &
etcd=$!
# $etcd is /usr/bin/time: stop etcd, its child, so that time writes the peak RSS.
trap 'pkill -TERM -P $etcd 2>/dev/null || true; wait $etcd 2>/dev/null || true' EXIT
deadline=$((SECONDS + 120))
until "$bin/etcdctl" --endpoints "$ep" endpoint health >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { cat "$work/restored.log" >&2; exit 1; }
  sleep 0.05
done
get() { "$bin/etcdctl" --endpoints "$ep" --command-timeout 600s get --prefix "$1" -w protobuf >/dev/null; }
# One range answer cannot pass gRPC's 2 GiB message limit ("received message larger
# than max"), so past 1 GiB an operator reads resource by resource, as here.
if [ "$(stat -c %s "$snap")" -le $((1 << 30)) ]; then
  get /registry/
else
  "$bin/etcdctl" --endpoints "$ep" --command-timeout 600s get --prefix /registry/ --keys-only \
    | awk -F/ 'NF >= 4 { print "/" $2 "/" $3 "/" }' | sort -u | while read -r prefix; do get "$prefix"; done
fi
