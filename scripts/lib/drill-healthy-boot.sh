# healthy-boot: three masters with kubeboot-checkpointer.service reboot cleanly. The
# checkpoints bring the api-servers back by themselves, so kubeboot.service on every
# master exits 0 with a "healthy" decision in its journal, and nothing is recovered.
. "$root/scripts/lib/machine-cluster.sh"
drill_cleanup() { mc_down; }

mc_up 1
wait_until 60 "the whole control plane Ready" mc_all_ready
api_saved() { on "$1" sh -c 'ls /etc/kubernetes/checkpoints/saved 2>/dev/null' | grep '^kubeboot-checkpoint_kube-system_kube-apiserver-' >/dev/null; }
for i in $(seq $mc_masters); do
  wait_until 120 "the checkpointer on master-$i to save the api-server" api_saved "master-$i"
done
ok "the checkpointer (the unit) saved the api-server's checkpoint on every master"

say "every master reboots cleanly (systemctl poweroff, then power on)"
for i in $(seq $mc_masters); do "$machines" poweroff "$dir" "master-$i"; done
mc_power_on
wait_until 180 "the control plane to serve again" mc_serving "$since"
rto=$((SECONDS - t0))
for i in $(seq $mc_masters); do
  name=master-$i
  expect "$name: decision" "$(decision "$name")" healthy
  on "$name" sh -c '! ls /var/lib/kubeboot/recovery 2>/dev/null | grep -q .' || fail "$name: a recovery dir was written"
  on "$name" sh -c '! ls /etc/kubernetes/manifests | grep -q "^bootstrap-"' || fail "$name: a bootstrap pod is in its manifests"
done
ok "nothing recovered on any master"
echo "RTO: $rto s (power on to every api-server serving and the scheduler and controller-manager leading again)" >&2
