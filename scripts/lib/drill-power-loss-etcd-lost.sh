# power-loss-etcd-lost: as power-loss, and the etcd data is gone on every master. The
# backups kubeboot-backup.timer took before the disaster (its service, run once on each
# master) are what brings the cluster back, with no operator: at boot the wiped members
# form a new, empty cluster; kubeboot.service on master-2, the one the policy names
# (`--backup-restore-node master-2`, the same value on every master), restores its
# newest backup as a new one-member etcd cluster with the revision bump, the other two
# move their data aside and join it one at a time, and then one master recovers the
# control plane from it under the lock. The journal of each master shows its steps.
#
# scripts/lib/drill-two-restorers.sh runs this with another policy (restore_policy) and
# other checks (check_restorers).
. "$root/scripts/lib/machine-cluster.sh"
drill_cleanup() { mc_down; }

# The operator's policy, the same on every master: master-2 restores.
if ! declare -F restore_policy >/dev/null; then
  restore_policy() { echo --backup-restore-node master-2; }
  check_restorers() {
    journal_has master-2 'restored backup revision' -u kubeboot.service || fail "master-2 did not log its restore"
    for i in 1 3; do
      journal_has "master-$i" 'joined cluster' -u kubeboot.service || fail "master-$i did not log joining the restored cluster"
    done
    ok "master-2 restored; master-1 and master-3 joined its cluster"
  }
fi

mc_up 0
# Debian's etcd 3.4 restores with etcdctl.
for i in $(seq $mc_masters); do
  name=master-$i
  set_flags "$name" /etc/default/kubeboot KUBEBOOT_ENSURE_ARGS \
    "$(on "$name" sh -c '. /etc/default/kubeboot; echo "$KUBEBOOT_ENSURE_ARGS"') --etcd-unit etcd.service --etcd-restore-tool /usr/bin/etcdctl $(restore_policy "$i")"
done
kubectl_ create namespace before-backup >/dev/null
wait_until 60 "the whole control plane Ready" mc_all_ready

say "the nightly backup: kubeboot-backup.service (what kubeboot-backup.timer starts) on every master"
for i in $(seq $mc_masters); do
  on "master-$i" systemctl start kubeboot-backup.service
  expect "master-$i: kubeboot-backup.service" "$(prop "master-$i" kubeboot-backup.service Result)" success
done
on master-2 kubeboot backup list --backup-dir /var/lib/kubeboot/backups >&2
kubectl_ create namespace after-backup >/dev/null

say "power loss, and every master's etcd data dir is gone"
for i in $(seq $mc_masters); do "$machines" kill "$dir" "master-$i"; done
for i in $(seq $mc_masters); do
  [ -d "$dir/master-$i/upper/var/lib/etcd/default/member" ] || fail "master-$i has no etcd data dir to lose"
  rm -rf "$dir/master-$i/upper/var/lib/etcd/default"
done
ok "etcd's data dir removed on every master (their disks, while off)"

say "power back: the three boot together; nobody types a command"
mc_power_on
for i in $(seq $mc_masters); do
  name=master-$i
  echo "--- $name: kubeboot.service $(prop "$name" kubeboot.service Result), decision $(decision "$name")" >&2
  on "$name" journalctl -b -q --no-pager -u kubeboot.service -o cat | grep -Ev '^(Starting|Finished) kubeboot' >&2 || true
done
wait_until 180 "the control plane to serve again" mc_serving "$since"
rto=$((SECONDS - t0))
check_restorers
expect "etcd members" "$(ETCDCTL_API=3 etcdctl --endpoints "$etcd_urls" member list | grep -c started)" 3
ids=$(ETCDCTL_API=3 etcdctl --endpoints "$etcd_urls" endpoint status -w json | grep -o '"cluster_id":[0-9]*' | sort -u | wc -l)
expect "etcd cluster IDs among the three members (one past)" "$ids" 1
kubectl_ get namespace before-backup >/dev/null || fail "namespace before-backup is gone: the backup was not restored"
if kubectl_ get namespace after-backup >/dev/null 2>&1; then fail "namespace after-backup exists: not the backup's past"; fi
ok "the backup's past: before-backup there, after-backup (written after it) not"
for i in $(seq $mc_masters); do
  aside=$(on "master-$i" sh -c 'ls -d /var/lib/etcd/default.kubeboot-* 2>/dev/null' | tr '\n' ' ')
  [ -n "$aside" ] || fail "master-$i: no data dir moved aside (the empty one its unit made at boot)"
  ok "master-$i: moved aside, never deleted: $aside"
done
echo "RTO: $rto s (power on to every api-server serving and the scheduler and controller-manager leading again)" >&2
