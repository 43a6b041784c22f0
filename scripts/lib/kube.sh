# kubectl against a cluster dir's admin kubeconfig, and the operator's step when masters
# join; sourced by cluster.sh (the process cluster) and machine-cluster.sh (the
# systemd-nspawn one). Functions expect $dir, and wait_until from the sourcing script.

kubectl_() { kubectl --kubeconfig "$dir/assets/auth/kubeconfig" --request-timeout 5s "$@"; }

# label_masters FROM TO: the operator's step when a master joins (kubeadm's
# mark-control-plane does the same): masters FROM..TO, once registered, get the
# control-plane role their kubelets may not set on themselves.
label_masters() {
  local i
  for i in $(seq "$1" "$2"); do
    wait_until 300 "master-$i to register" kubectl_ get node "master-$i" || return 1
    kubectl_ label node "master-$i" node-role.kubernetes.io/control-plane= --overwrite >/dev/null || return 1
  done
}
