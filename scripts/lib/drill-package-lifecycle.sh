# scripts/machine-drill package-lifecycle: the .deb and the .rpm on booted masters, as
# an operator runs them (docs/packaging.md, docs/provisioning.md). Sourced by
# machine-drill.

say "building kubeboot and kubeboot-testkit (debug), and two versions of each package"
build_kubeboot
v1=$version
# A later version, built an hour later: the unit files' mtimes change, so a unit left
# unreloaded after the upgrade would show NeedDaemonReload=yes.
v2=$v1.1
SOURCE_DATE_EPOCH=$(( $(date +%s) - 3600 )) "$root/scripts/package" all --binary "$bin/kubeboot" \
  --fast --no-install --out "$dir/pkgs" >/dev/null
SOURCE_DATE_EPOCH=$(date +%s) "$root/scripts/package" all --binary "$bin/kubeboot" \
  --version "$v2" --fast --no-install --out "$dir/pkgs" >/dev/null
arch=$(dpkg --print-architecture) rpm_arch=$(uname -m)
base=$(pick_base)
units="kubeboot.service kubeboot-checkpointer.service kubeboot-backup.service kubeboot-backup.timer"
# What the operator enables (docs/provisioning.md; the checkpointer for masters that
# run it from the package).
enabled="kubeboot.service kubeboot-checkpointer.service kubeboot-backup.timer"

# etcd_on NAME IP: Debian's etcd.service on the machine, serving on IP, holding the
# test cluster as kube-apiserver stores it; so `kubeboot backup` has something to keep.
etcd_on() {
  local name=$1 ip=$2 env
  env=$(mktemp)
  cat > "$env" <<EOF
ETCD_LISTEN_CLIENT_URLS=http://$ip:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$ip:2379
ETCD_LISTEN_PEER_URLS=http://$ip:2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$ip:2380
ETCD_INITIAL_CLUSTER=$name=http://$ip:2380
EOF
  "$machines" put "$dir" "$name" "$env" /etc/default/etcd; rm -f "$env"
  on "$name" systemctl enable --now --quiet etcd.service
  wait_until 30 "etcd on $name" env ETCDCTL_API=3 etcdctl --endpoints "http://$ip:2379" endpoint health
  "$bin/kubeboot-testkit" load "http://$ip:2379" >/dev/null
  ok "$name: Debian's etcd.service on $ip:2379 holds the test cluster"
}

# configure NAME IP ENVDIR: the operator's configuration before enabling the units:
# etcd, the kubeconfig, the flags of ensure and backup (the edited config files).
configure() {
  etcd_on "$1" "$2"
  kubeconfig_on "$1"
  set_flags "$1" "$3/kubeboot-backup" KUBEBOOT_BACKUP_ARGS "--etcd-servers http://$2:2379"
  set_flags "$1" "$3/kubeboot" KUBEBOOT_ENSURE_ARGS "--etcd-servers http://$2:2379"
}

# nothing_started NAME: no kubeboot unit enabled, started or logged; no state dir.
nothing_started() {
  local u want
  for u in $units; do
    # kubeboot-backup.service has no [Install]: the timer starts it.
    want=disabled; [ "$u" = kubeboot-backup.service ] && want=static
    expect "$1: $u enabled after install" "$(on "$1" systemctl is-enabled "$u" || true)" $want
    expect "$1: $u active after install" "$(on "$1" systemctl is-active "$u" || true)" inactive
  done
  [ -z "$(on "$1" journalctl -b -q --no-pager -u 'kubeboot*' 2>/dev/null)" ] || fail "$1: a kubeboot unit logged after install"
  on "$1" test ! -e /var/lib/kubeboot || fail "$1: /var/lib/kubeboot exists after install"
  ok "$1: nothing started, nothing logged, no /var/lib/kubeboot"
}

# units_ran NAME: after a reboot with the units enabled.
units_ran() {
  local name=$1 code
  # No kubelet.service on this machine: ensure, finding no kubelet healthz, asks the real
  # systemd over D-Bus and ends the wait at once (docs/ensure.md, step 1), exit 1.
  wait_until 60 "kubeboot.service to finish on $name" \
    sh -c "[ \"\$('$machines' run '$dir' $name systemctl show -P ActiveState kubeboot.service)\" = failed ]"
  code=$(prop "$name" kubeboot.service ExecMainStatus)
  expect "$name: kubeboot.service (ensure) at boot, exit" "$code" 1
  journal_has "$name" 'the kubelet is down: http://127.0.0.1:10248: /healthz: .*Connection refused.*; systemd: kubelet.service is inactive' \
    -u kubeboot.service || fail "$name: kubeboot.service did not log what the real systemd said of kubelet.service"
  # A master without ca-certificates (minbase has none) once failed here before
  # asking the kubelet: plain http needs no trust store (src/health.rs).
  journal_has "$name" 'root certificate' -u kubeboot.service \
    && fail "$name: the healthz probe needed a CA bundle"
  on "$name" journalctl -b -q --no-pager -o cat -u kubeboot.service | grep -m2 -i kubelet | sed "s/^/    $name journal: /" >&2
  # The checkpointer waits for the kubelet and the api-server by itself: it runs.
  wait_until 30 "the checkpointer on $name" \
    sh -c "[ \"\$('$machines' run '$dir' $name systemctl show -P SubState kubeboot-checkpointer.service)\" = running ]"
  ok "$name: kubeboot-checkpointer.service running (pid $(prop "$name" kubeboot-checkpointer.service MainPID))"
  expect "$name: kubeboot-backup.timer" "$(on "$name" systemctl is-active kubeboot-backup.timer)" active
  [ -n "$(prop "$name" kubeboot-backup.timer NextElapseUSecRealtime)" ] || fail "$name: the timer has no next run"
}

# security NAME: systemd-analyze security of each service, asked of the running systemd.
security() {
  local u line
  for u in kubeboot.service kubeboot-checkpointer.service kubeboot-backup.service; do
    line=$(on "$1" systemd-analyze security --no-pager "$u" | grep -m1 'Overall exposure level')
    echo "security as booted ($1): $line"
  done
}

# backups NAME: the backup dirs kept on the machine.
backups() { on "$1" sh -c 'ls -1 /var/lib/kubeboot/backups 2>/dev/null | sort'; }

# backup_now NAME: `systemctl start kubeboot-backup.service` (docs/packaging.md, step 2).
backup_now() {
  local n
  n=$(backups "$1" | wc -l)
  on "$1" systemctl start kubeboot-backup.service
  expect "$1: kubeboot-backup.service result" "$(prop "$1" kubeboot-backup.service Result)" success
  expect "$1: backups kept" "$(backups "$1" | grep -c . || true)" $((n + 1))
}

# ---------------------------------------------------------------------------------
say "the .deb on master-1 (Debian, booted)"
"$machines" create "$dir" master-1
boot master-1
ip1=$base.1
r0=$(reloads master-1)
"$machines" put "$dir" master-1 "$dir/pkgs/kubeboot_${v1}_$arch.deb" /root/kubeboot_$v1.deb
"$machines" put "$dir" master-1 "$dir/pkgs/kubeboot_${v2}_$arch.deb" /root/kubeboot_$v2.deb
on master-1 dpkg -i "/root/kubeboot_$v1.deb" >/dev/null
expect "master-1: dpkg status" "$(on master-1 dpkg-query -W -f '${Status} ${Version}' kubeboot)" "install ok installed $v1"
[ "$(reloads master-1)" -gt "$r0" ] || fail "master-1: postinst did not daemon-reload"
ok "master-1: postinst ran systemctl daemon-reload"
nothing_started master-1

say "master-1: the operator configures backups and enables the units"
configure master-1 "$ip1" /etc/default
backup_now master-1
# shellcheck disable=SC2086
on master-1 systemctl enable --quiet $enabled
for u in $enabled; do expect "master-1: $u" "$(on master-1 systemctl is-enabled "$u")" enabled; done

say "master-1: reboot; the units run"
"$machines" poweroff "$dir" master-1
boot master-1
units_ran master-1
security master-1

say "master-1: upgrade to $v2 (dpkg -i)"
checkpointer_pid=$(prop master-1 kubeboot-checkpointer.service MainPID)
mtime=$(on master-1 stat -c %Y /lib/systemd/system/kubeboot.service)
r0=$(reloads master-1)
on master-1 dpkg -i "/root/kubeboot_$v2.deb" >/dev/null
expect "master-1: dpkg status" "$(on master-1 dpkg-query -W -f '${Status} ${Version}' kubeboot)" "install ok installed $v2"
[ "$(on master-1 stat -c %Y /lib/systemd/system/kubeboot.service)" != "$mtime" ] \
  || fail "master-1: the upgrade did not replace the unit files"
[ "$(reloads master-1)" -gt "$r0" ] || fail "master-1: no daemon-reload on upgrade"
for u in $units; do expect "master-1: $u NeedDaemonReload after upgrade" "$(prop master-1 "$u" NeedDaemonReload)" no; done
on master-1 grep -qx "KUBEBOOT_BACKUP_ARGS=\"--etcd-servers http://$ip1:2379\"" /etc/default/kubeboot-backup \
  || fail "master-1: the edited /etc/default/kubeboot-backup was not kept"
ok "master-1: edited /etc/default/kubeboot-backup kept"
expect "master-1: checkpointer not restarted by the upgrade (pid)" "$(prop master-1 kubeboot-checkpointer.service MainPID)" "$checkpointer_pid"
backup_now master-1
kept=$(backups master-1)

say "master-1: dpkg -r"
on master-1 dpkg -r kubeboot >/dev/null
expect "master-1: dpkg status" "$(on master-1 dpkg-query -W -f '${Status}' kubeboot)" "deinstall ok config-files"
on master-1 test ! -e /usr/bin/kubeboot || fail "master-1: /usr/bin/kubeboot left after dpkg -r"
for u in kubeboot-checkpointer.service kubeboot-backup.timer; do
  expect "master-1: $u after dpkg -r (prerm stopped it)" "$(on master-1 systemctl is-active "$u" || true)" inactive
done
for f in kubeboot kubeboot-backup kubeboot-checkpointer; do
  on master-1 test -f "/etc/default/$f" || fail "master-1: /etc/default/$f gone after dpkg -r"
done
on master-1 grep -q "http://$ip1:2379" /etc/default/kubeboot-backup || fail "master-1: the edit is gone after dpkg -r"
expect "master-1: backups after dpkg -r" "$(backups master-1)" "$kept"

say "master-1: dpkg -P"
on master-1 dpkg -P kubeboot >/dev/null
expect "master-1: dpkg status" "$(on master-1 dpkg-query -W -f '${Status}' kubeboot 2>/dev/null || echo none)" none
for f in kubeboot kubeboot-backup kubeboot-checkpointer; do
  on master-1 test ! -e "/etc/default/$f" || fail "master-1: /etc/default/$f left after dpkg -P"
done
ok "master-1: /etc/default/kubeboot* gone"
expect "master-1: backups after dpkg -P" "$(backups master-1)" "$kept"
say "master-1: reboot with the operator's .wants links left dangling"
"$machines" poweroff "$dir" master-1
boot master-1
[ -z "$(on master-1 systemctl list-units --failed --no-legend 'kubeboot*')" ] || fail "master-1: a kubeboot unit failed after purge"
[ -z "$(on master-1 systemctl list-units --all --no-legend --state=active,activating 'kubeboot*')" ] \
  || fail "master-1: a kubeboot unit is active after purge"
ok "master-1: no kubeboot unit active or failed"
"$machines" poweroff "$dir" master-1

. "$root/scripts/lib/drill-package-rpm.sh"
