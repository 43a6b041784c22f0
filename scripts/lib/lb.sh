# The api-servers' load balancer (Debian's HAProxy), shared by the process cluster
# (scripts/lib/cluster.sh) and the machines' cluster (scripts/lib/machine-cluster.sh).
# As a real one it sits on its own address: TCP passthrough (TLS ends at the
# api-servers, whose serving cert names this address too), each master's api-server
# taken in and out by an HTTPS GET /readyz every second (anonymous, as kube-apiserver
# allows it), so the kubelets and kubeconfigs reach whichever api-server is ready and
# any master can be the one that recovers.

# haproxy_cfg ADDR MASTER_IP...: the config, on stdout; refused by `haproxy -c` is an
# error. Needs haproxy on PATH.
haproxy_cfg() {
  local addr=$1 i=0 ip cfg; shift
  command -v haproxy >/dev/null || { echo "haproxy is not installed (Debian package haproxy; scripts/setup-tools)" >&2; return 1; }
  cfg=$({
    printf 'global\n  log stdout format raw local0 info\n'
    printf 'defaults\n  log global\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n'
    printf 'frontend api\n  bind %s:6443\n  default_backend masters\n' "$addr"
    printf 'backend masters\n  option httpchk GET /readyz\n  http-check expect status 200\n'
    printf '  default-server inter 1s fall 2 rise 1 check check-ssl verify none\n'
    for ip in "$@"; do i=$((i + 1)); printf '  server master-%s %s:6443\n' "$i" "$ip"; done
  })
  haproxy -c -q -f /dev/stdin <<<"$cfg" >&2 || { echo "haproxy refuses its config for $addr" >&2; return 1; }
  printf '%s\n' "$cfg"
}
