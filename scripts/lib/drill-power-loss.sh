# power-loss: three masters lose power at once, with no clean shutdown, and boot again;
# nobody types a command. The cluster never ran a checkpointer (the worst case: nothing
# on the disks starts an api-server), so at boot every master's kubeboot.service finds
# the api-server unreachable past its 30 s grace, and the three race for the recovery
# lock in etcd (Debian's etcd.service, three members, back with its data): one recovers
# from etcd and starts the control plane, the others wait on it and find it healthy.
# The drill reads each master's journal for the decision it logged.
. "$root/scripts/lib/machine-cluster.sh"
drill_cleanup() { mc_down; }

mc_up 0
kubectl_ create namespace drill >/dev/null
wait_until 60 "the whole control plane Ready" mc_all_ready
ok "control plane Ready on every master; namespace drill written"

say "power loss: every master's processes SIGKILLed at once"
for i in $(seq $mc_masters); do "$machines" kill "$dir" "master-$i"; done
api_ready >/dev/null 2>&1 && fail "the api-server still answers with every master off"
ok "every master off; nothing answers at $(mc_lb):6443"

say "power back: the three boot together; nobody types a command"
mc_power_on
wait_until 180 "the control plane to serve again" mc_serving "$since"
rto=$((SECONDS - t0))
recovered=0
for i in $(seq $mc_masters); do
  name=master-$i
  d=$(decision "$name")
  echo "$name: decision $d: $(last_line "$name")" >&2
  case $d in
    recover) recovered=$((recovered + 1))
      journal_has "$name" 'recovering' -u kubeboot.service || fail "$name decided recover but logged no recovery" ;;
    healthy) ;;
    *) fail "$name: decision $d, want recover or healthy" ;;
  esac
done
expect "masters that recovered (the lock in etcd allows one)" "$recovered" 1
kubectl_ get namespace drill >/dev/null || fail "namespace drill is gone: the recovery lost data"
ok "namespace drill kept (recovered from the live etcd, nothing rolled back)"
echo "RTO: $rto s (power on to every api-server serving and the scheduler and controller-manager leading again)" >&2
