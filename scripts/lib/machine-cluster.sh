# A self-hosted cluster on three masters that boot (scripts/machines), for the machine
# drills that need a control plane (power-loss, healthy-boot). Each master is what an
# operator's is after provisioning:
# - Debian's etcd.service, one member of a three-member cluster on the masters (plain
#   http on loopback addresses; the drills exercise the boot, not etcd's TLS);
# - kubelet.service running the fake kubelet of tests/testkit as system:node:master-I
#   (its kubeconfig from `render --node-names`), as a default kubelet (no read-only
#   port, 10250 authorized through the api-server), serving CRI v1 on
#   /run/containerd/containerd.sock; its "images" are the doubles' binaries, seen
#   read-only at the host's target dir (`scripts/machines bind`);
# - the .deb installed with `dpkg -i`, /etc/default/kubeboot* edited, and
#   kubeboot.service, kubeboot-checkpointer.service (unless the drill says none) and
#   kubeboot-backup.timer enabled, as docs/provisioning.md tells an operator.
# The api-servers sit behind HAProxy on the host, on an address of their own
# ($base.200:6443), so any master can be the one that recovers. The cluster is
# bootstrapped by `kubeboot start` run inside master-1.
#
# Functions expect $dir, $machines and $root; mc_up sets $base, $bin, $etcd_urls.

. "$root/scripts/lib/lb.sh"
. "$root/scripts/lib/kube.sh"

mc_masters=3
mc_ip() { echo "$base.$1"; }
mc_lb() { echo "$base.200"; }
api_ready() { kubectl_ get --raw /readyz; }

# put_file NAME MODE DEST < CONTENT: a file on a running master, created with MODE (no
# moment with a wider one), replaced by rename.
put_file() {
  on "$1" sh -c 'umask 077; mkdir -p "$(dirname "$2")" && cat > "$2.tmp" && chmod "$1" "$2.tmp" && mv "$2.tmp" "$2"' \
    _ "$2" "$3"
}

# mc_up CHECKPOINTER: CHECKPOINTER is 1 to enable kubeboot-checkpointer.service.
mc_up() {
  local checkpointer=$1 i name urls=() apis
  build_kubeboot
  (cd "$root" && cargo build -q --workspace --bins)
  base=$(pick_base)
  for i in $(seq $mc_masters); do urls+=("http://$(mc_ip "$i"):2379"); done
  etcd_urls=$(IFS=,; echo "${urls[*]}")
  apis="https://$(mc_lb):6443"
  for i in $(seq $mc_masters); do apis="$apis,https://$(mc_ip "$i"):6443"; done
  say "rendering a cluster for $mc_masters masters on $base.0/24 (etcd: $etcd_urls)"
  KUBEBOOT_CONFIG=/dev/null "$bin/kubeboot" render --asset-dir "$dir/assets" --api-servers "$apis" \
    --node-names "$(seq -f 'master-%g' -s, $mc_masters)" --etcd-servers "$etcd_urls" >/dev/null
  cat > "$dir/image-map.yaml" <<MAP
registry.k8s.io/kube-apiserver: $bin/fake-apiserver
registry.k8s.io/kube-controller-manager: $bin/fake-controller-manager
registry.k8s.io/kube-scheduler: $bin/fake-scheduler
registry.k8s.io/kube-proxy: $bin/fake-pause
registry.k8s.io/pause: $bin/fake-pause
quay.io/kubeboot/kubeboot: $bin/fake-pause
busybox: /bin/sh
MAP
  local peers="" 
  for i in $(seq $mc_masters); do peers="${peers:+$peers,}master-$i=http://$(mc_ip "$i"):2380"; done
  for i in $(seq $mc_masters); do
    name=master-$i
    "$machines" create "$dir" "$name"
    "$machines" bind "$dir" "$name" "$bin"
    boot "$name"
    install_deb "$name"
    put_file "$name" 0600 /etc/kubernetes/kubeconfig < "$dir/assets/auth/kubeconfig"
    put_file "$name" 0600 /etc/kubernetes/kubelet.kubeconfig < "$dir/assets/auth/kubelets/$name.kubeconfig"
    put_file "$name" 0644 /etc/kubernetes/ca.crt < "$dir/assets/tls/ca.crt"
    put_file "$name" 0644 /etc/kubernetes/image-map.yaml < "$dir/image-map.yaml"
    put_file "$name" 0644 /etc/default/etcd <<EOF
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_CLIENT_URLS=http://$(mc_ip "$i"):2379
ETCD_ADVERTISE_CLIENT_URLS=http://$(mc_ip "$i"):2379
ETCD_LISTEN_PEER_URLS=http://$(mc_ip "$i"):2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$(mc_ip "$i"):2380
ETCD_INITIAL_CLUSTER=$peers
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=kubeboot-machines
EOF
    put_file "$name" 0644 /etc/systemd/system/kubelet.service <<EOF
[Unit]
Description=kubelet (the fake kubelet of kubeboot's tests/testkit)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=$bin/fake-kubelet --hostname-override $name --node-ip $(mc_ip "$i") \\
  --node-labels kubernetes.io/hostname=$name --kubeconfig /etc/kubernetes/kubelet.kubeconfig \\
  --pod-manifest-path /etc/kubernetes/manifests --root-dir /var/lib/kubelet \\
  --image-map /etc/kubernetes/image-map.yaml --max-grace-period 5s --read-only-port 0 \\
  --container-runtime-endpoint unix:///run/containerd/containerd.sock \\
  --client-ca-file /etc/kubernetes/ca.crt --anonymous-auth=false \\
  --authentication-token-webhook=true --authorization-mode Webhook
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
    on "$name" mkdir -p /etc/kubernetes/manifests
    on "$name" systemctl daemon-reload
    on "$name" systemctl enable --quiet etcd.service kubelet.service
    # Each member waits for a quorum before it says ready (Type=notify).
    on "$name" systemctl start --no-block etcd.service
  done
  wait_until 90 "the three etcd members to be healthy" \
    env ETCDCTL_API=3 etcdctl --endpoints "$etcd_urls" endpoint health
  ok "etcd: three members (Debian's etcd.service) healthy at $etcd_urls"
  for i in $(seq $mc_masters); do
    on "master-$i" systemctl start kubelet.service
    wait_until 30 "the kubelet of master-$i" curl -sf "http://$(mc_ip "$i"):10248/healthz"
  done
  ok "kubelet.service (fake kubelet) healthy on every master"
  local ips=()
  for i in $(seq $mc_masters); do ips+=("$(mc_ip "$i")"); done
  haproxy_cfg "$(mc_lb)" "${ips[@]}" > "$dir/haproxy.cfg"
  setsid haproxy -db -f "$dir/haproxy.cfg" >>"$dir/haproxy.log" 2>&1 </dev/null &
  echo $! > "$dir/haproxy.pid"
  wait_until 10 "the load balancer at $(mc_lb):6443" bash -c "exec 3<>/dev/tcp/$(mc_lb)/6443"

  say "kubeboot start inside master-1"
  tar -C "$dir" -cf - assets | on master-1 sh -c 'umask 077; mkdir -p /root && tar -C /root -xf -'
  label_masters 2 $mc_masters & local labeller=$!
  on master-1 kubeboot start --asset-dir /root/assets --node-name master-1 --timeout 4m \
    --pivot-timeout 3m > "$dir/start.log" 2>&1 || { tail -30 "$dir/start.log" >&2; fail "kubeboot start failed"; }
  wait "$labeller" || fail "masters 2..$mc_masters were not labelled"
  ok "the control plane is up, pivoted to its DaemonSets and Deployments ($(grep -c . "$dir/start.log") lines of start)"

  for i in $(seq $mc_masters); do
    name=master-$i
    set_flags "$name" /etc/default/kubeboot KUBEBOOT_ENSURE_ARGS \
      "--etcd-servers $etcd_urls --kubelet-healthz-url http://$(mc_ip "$i"):10248/healthz --node-name $name --boot-grace 30s --timeout 4m --pivot-timeout 3m"
    set_flags "$name" /etc/default/kubeboot-backup KUBEBOOT_BACKUP_ARGS "--etcd-servers $etcd_urls"
    set_flags "$name" /etc/default/kubeboot-checkpointer KUBEBOOT_CHECKPOINTER_ARGS \
      "--node-name $name --host-ip $(mc_ip "$i")"
    on "$name" systemctl enable --quiet kubeboot.service kubeboot-backup.timer
    if [ "$checkpointer" = 1 ]; then on "$name" systemctl enable --quiet --now kubeboot-checkpointer.service; fi
  done
  ok "kubeboot.service and kubeboot-backup.timer enabled on every master$([ "$checkpointer" = 1 ] && echo ", and kubeboot-checkpointer.service started")"
}

# mc_down: the host's part (the load balancer); scripts/machines down does the rest.
mc_down() {
  local pid
  pid=$(cat "$dir/haproxy.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/haproxy.pid"
}

# ready_pods COMPONENT: how many of its kube-system pods the API says are Ready.
ready_pods() {
  kubectl_ -n kube-system get pods -l "k8s-app=$1" \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null \
    | grep -c '^True$' || true
}

# mc_all_ready: an api-server Ready on every master, a scheduler and a controller-manager
# Ready, through the LB.
mc_all_ready() {
  api_ready >/dev/null 2>&1 || return 1
  [ "$(ready_pods kube-apiserver)" -ge $mc_masters ] || return 1
  [ "$(ready_pods kube-scheduler)" -ge 1 ] || return 1
  [ "$(ready_pods kube-controller-manager)" -ge 1 ]
}

# mc_serving SINCE: after a power-on at SINCE (epoch seconds), the control plane serves
# again, judged by what is fresh (the pods' Ready in the API may still be the one
# posted before the power went): every master's own api-server answers /readyz, and
# the elected scheduler and controller-manager renewed their Leases since SINCE.
mc_serving() {
  local since=$1 i lease t
  for i in $(seq $mc_masters); do
    [ "$(curl -sk --max-time 3 "https://$(mc_ip "$i"):6443/readyz")" = ok ] || return 1
  done
  for lease in kube-scheduler kube-controller-manager; do
    t=$(kubectl_ -n kube-system get lease "$lease" -o jsonpath='{.spec.renewTime}' 2>/dev/null) || return 1
    [ -n "$t" ] && [ "$(date -d "$t" +%s)" -ge "$since" ] || return 1
  done
}

# decision NAME: the KUBEBOOT_DECISION kubeboot.service logged this boot (the last one).
decision() {
  on "$1" journalctl -b -q --no-pager -u kubeboot.service -o verbose \
    | sed -n 's/^ *KUBEBOOT_DECISION=//p' | tail -1
}

# last_line NAME: kubeboot's own last journal line this boot (not systemd's "Finished").
last_line() {
  on "$1" journalctl -b -q --no-pager -u kubeboot.service -o cat | grep -Ev '^(Starting|Finished) kubeboot' | tail -1
}

# unit_done NAME: kubeboot.service has finished (a oneshot with RemainAfterExit).
unit_done() { case $(prop "$1" kubeboot.service ActiveState) in active|failed) return 0 ;; esac; return 1; }

# mc_power_on: every master boots at once (as after a power cut), nobody types a
# command; waits for kubeboot.service on each to finish, and fails showing its journal
# if one did not succeed. Sets $t0 and $since (epoch seconds) for the RTO.
mc_power_on() {
  local i name
  t0=$SECONDS; since=$(date +%s)
  for i in $(seq $mc_masters); do "$machines" boot "$dir" "master-$i" --no-block >/dev/null; done
  for i in $(seq $mc_masters); do
    wait_until 600 "kubeboot.service on master-$i to finish" unit_done "master-$i"
  done
  for i in $(seq $mc_masters); do
    name=master-$i
    [ "$(prop "$name" kubeboot.service Result)" = success ] && continue
    on "$name" journalctl -b -q --no-pager -u kubeboot.service -o cat >&2 || true
    fail "$name: kubeboot.service $(prop "$name" kubeboot.service Result) (its journal above)"
  done
  ok "kubeboot.service finished with success on every master, $((SECONDS - t0)) s after power-on"
}
