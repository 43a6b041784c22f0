# two-restorers (issue 11): as power-loss-etcd-lost, but the policy is wrong: master-1
# and master-3 are both allowed to restore (`--allow-backup-restore` on each, no
# `--backup-restore-node`), and boot at the same moment. Each may restore its own
# newest backup as a one-member cluster; the rule between restores (the restorer whose
# name sorts first wins) must leave one past: in the end the three members serve one
# cluster ID, holding a backup's data, never two.
restore_policy() { case $1 in 1|3) echo --allow-backup-restore ;; esac; }
check_restorers() {
  local i restored=""
  for i in $(seq $mc_masters); do
    journal_has "master-$i" 'restored backup revision' -u kubeboot.service && restored="$restored master-$i"
  done
  case $restored in
    " master-1"|" master-3"|" master-1 master-3") ;;
    *) fail "restored on:${restored:- none}; only master-1 and master-3 were allowed" ;;
  esac
  ok "restored on:$restored (both allowed, booted together)"
  if [ "$restored" = " master-1 master-3" ]; then
    journal_has master-3 'yields to cluster' -u kubeboot.service \
      || fail "two restores, and master-3's did not yield to master-1's"
    ok "master-3's restore yielded to master-1's (the restorer whose name sorts first)"
  fi
}
. "$root/scripts/lib/drill-power-loss-etcd-lost.sh"
