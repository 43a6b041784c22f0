# Shared by scripts/cluster and scripts/drill: a local "cluster" of one real etcd and N
# fake-kubelets, each kubelet a master node with its own loopback address (127.A.B.i),
# its own root filesystem (DIR/nodes/master-i) and its own ports, so that its pods bind
# the same ports as on a real node. Every process is started with setsid and recorded
# in DIR/run/NAME.pid, so `down` can stop its whole process group.
#
# Functions expect $dir (the cluster dir) and $bin (where the binaries are).

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out after ${limit}s waiting for $what" >&2; return 1; }
    sleep 0.2
  done
}

# spawn NAME LOG CMD...: runs CMD in its own session, records its pid.
spawn() {
  local name=$1 log=$2; shift 2
  mkdir -p "$dir/run" "$(dirname "$log")"
  setsid "$@" >>"$log" 2>&1 < /dev/null &
  echo $! > "$dir/run/$name.pid"
}

# stop NAME: SIGTERM to the process group, SIGKILL after 10 s.
stop() {
  local pidfile="$dir/run/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# The drills never read the host's /etc/kubeboot/config.toml.
export KUBEBOOT_CONFIG=/dev/null

node_ip() { echo "$base.$1"; }
node_root() { echo "$dir/nodes/master-$1"; }

etcdctl_tls() {
  if [ "$etcd_tls" = 1 ]; then
    echo --cacert "$dir/assets/tls/etcd/ca.crt" --cert "$dir/assets/tls/etcd/client.crt" --key "$dir/assets/tls/etcd/client.key"
  fi
}

# The same TLS files, in kubeboot's (bootkube's) flag names.
kubeboot_etcd_tls() {
  if [ "$etcd_tls" = 1 ]; then
    echo --etcd-cafile "$dir/assets/tls/etcd/ca.crt" --etcd-certfile "$dir/assets/tls/etcd/client.crt" \
      --etcd-keyfile "$dir/assets/tls/etcd/client.key"
  fi
}

start_etcd() {
  local ip=$base.100 scheme=http tls=()
  if [ "$etcd_tls" = 1 ]; then
    scheme=https
    tls=(--cert-file "$dir/assets/tls/etcd/server.crt" --key-file "$dir/assets/tls/etcd/server.key"
         --trusted-ca-file "$dir/assets/tls/etcd/ca.crt" --client-cert-auth)
  fi
  spawn etcd "$dir/logs/etcd.log" "$(command -v etcd)" --name etcd0 --data-dir "$dir/etcd-data" \
    --listen-client-urls "$scheme://$ip:2379" --advertise-client-urls "$scheme://$ip:2379" \
    --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
    --initial-cluster "etcd0=http://$ip:2380" "${tls[@]}"
  # shellcheck disable=SC2046
  wait_until 30 "etcd at $scheme://$ip:2379" env ETCDCTL_API=3 etcdctl --endpoints "$scheme://$ip:2379" $(etcdctl_tls) endpoint health \
    || { tail -20 "$dir/logs/etcd.log" >&2; return 1; }
}

# The api-servers' load balancer of a multi-master cluster, at 127.A.B.200:6443
# (scripts/lib/lb.sh).
. "$(dirname "${BASH_SOURCE[0]}")/lb.sh"
. "$(dirname "${BASH_SOURCE[0]}")/kube.sh"
lb_ip() { echo "$base.200"; }
start_lb() {
  local i ips=()
  for i in $(seq "$masters"); do ips+=("$(node_ip "$i")"); done
  haproxy_cfg "$(lb_ip)" "${ips[@]}" > "$dir/haproxy.cfg"
  spawn lb "$dir/logs/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
  wait_until 10 "the load balancer at $(lb_ip):6443" bash -c "exec 3<>/dev/tcp/$(lb_ip)/6443" \
    || { tail -20 "$dir/logs/haproxy.log" >&2; return 1; }
}

# start_kubelet I: master-I on 127.A.B.I with root fs DIR/nodes/master-I, as
# system:node:master-I (its own kubeconfig from `render --node-names`, so the Node
# authorizer and NodeRestriction judge it) and with no role label (a kubelet may not set
# node-role.kubernetes.io/*; `kubeboot start` or the operator does). As a default
# kubelet (the KubeletConfiguration file's defaults): no read-only port (the checkpointer
# must not rely on it); 10250 is HTTPS (a self-signed pair in its --cert-dir, the root
# dir's pki/) with client certificates from the cluster CA, bearer tokens reviewed by the
# api-server (TokenReview), no anonymous requests, and every request authorized by the
# api-server (SubjectAccessReview), so it refuses while the api-server is down; the node's
# containerd socket (CRI v1, served by the fake kubelet) under its /var/run, where the
# rendered checkpointer DaemonSet's /var/run mount finds it (on a real host /var/run is
# /run; the node dirs keep the two apart).
start_kubelet() {
  local i=$1 root
  root=$(node_root "$i")
  # What a master's disk has before anything of Kubernetes runs on it.
  mkdir -p "$root/etc/kubernetes/manifests" "$root/var/lib/kubelet" "$root/run" "$root/var/run" "$root/var/lib/etcd" "$root/lib/modules"
  # Containers run as host processes: a command that is not the image's own binary
  # (the etcd restore's etcdutl) is looked up on the kubelet's PATH.
  local path=$PATH
  [ -z "${etcd35:-}" ] || path=$etcd35:$PATH
  spawn "kubelet-$i" "$dir/logs/kubelet-master-$i.log" env PATH="$path" "$bin/fake-kubelet" \
    --hostname-override "master-$i" --node-ip "$(node_ip "$i")" \
    --node-labels "kubernetes.io/hostname=master-$i" \
    --kubeconfig "$dir/assets/auth/kubelets/master-$i.kubeconfig" --root-fs "$root" \
    --pod-manifest-path "$root/etc/kubernetes/manifests" --root-dir "$root/var/lib/kubelet" \
    --image-map "$dir/image-map.yaml" --max-grace-period 5s \
    --read-only-port 0 --container-runtime-endpoint "unix://$root/var/run/containerd/containerd.sock" \
    --client-ca-file "$dir/assets/tls/ca.crt" --anonymous-auth=false \
    --authentication-token-webhook=true --authorization-mode Webhook
  wait_until 30 "the kubelet of master-$i" curl -sf "http://$(node_ip "$i"):10248/healthz" \
    || { tail -20 "$dir/logs/kubelet-master-$i.log" >&2; return 1; }
}

# kstart I ASSET_DIR [ARGS...]: `kubeboot start` as an operator on master-I runs it.
# With KSTART_EXEC=1 the calling (sub)shell becomes kubeboot, so `$!` of a background
# call is kubeboot's own pid.
kstart() {
  local i=$1 assets=$2 root; shift 2
  root=$(node_root "$i")
  local run=()
  [ "${KSTART_EXEC:-0}" = 1 ] && run=(exec)
  "${run[@]}" "$bin/kubeboot" start --asset-dir "$assets" \
    --pod-manifest-path "$root/etc/kubernetes/manifests" \
    --bootstrap-secrets-dir "$root/etc/kubernetes/bootstrap-secrets" \
    --lock-file "$root/run/kubeboot/start.lock" --node-name "master-$i" "$@"
}

# kensure I ARGS...: `kubeboot ensure` on master-I, as its boot unit would run it. The
# bootstrap pods see the node's root fs at /, so their hostPaths are the real ones. A
# multi-master cluster's kubeconfigs reach the load balancer, which sends the master
# that recovers to the api-server it starts once that one is ready; a single master's
# reach its own. The fake kubelets are no systemd units, so ensure does not ask the
# host's systemd about one.
kensure() { kensure_cmd "$@"; "${ensure_cmd[@]}"; }

# kensure_cmd I ARGS...: kensure's command line into the array ensure_cmd, not run
# (scripts/lib/bench-cluster.sh times it); writes its kubeconfig.
kensure_cmd() {
  local i=$1 root kubeconfig; shift
  root=$(node_root "$i")
  kubeconfig=$dir/kubeconfig-master-$i
  cp "$dir/assets/auth/kubeconfig" "$kubeconfig"
  ensure_cmd=("$bin/kubeboot" ensure --kubeconfig "$kubeconfig" \
    --kubelet-healthz-url "http://$(node_ip "$i"):10248/healthz" \
    --pod-manifest-path "$root/etc/kubernetes/manifests" \
    --bootstrap-secrets-dir "$root/etc/kubernetes/bootstrap-secrets" \
    --host-bootstrap-secrets-dir /etc/kubernetes/bootstrap-secrets \
    --recovery-root "$dir/recovery" --backup-dir "$dir/backups" \
    --lock-file "$root/run/kubeboot/start.lock" --node-name "master-$i" --kubelet-unit= \
    --cri-socket "unix://$root/var/run/containerd/containerd.sock" "$@")
}

load_env() {
  [ -f "$dir/cluster.env" ] || die "$dir is not a cluster dir (no cluster.env)"
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
}
