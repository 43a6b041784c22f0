# The .rpm half of scripts/machine-drill package-lifecycle (sourced after the .deb half):
# the same operator steps on master-2, with Debian's rpm on the booted machine.
#
# rpm -i needs --nodeps here: the machine's rpm database is empty (Debian's packages
# are in dpkg's database), so nothing provides the libc.so.6(GLIBC_…) requirements
# rpmbuild generated. The scriptlets and file handling are rpm's own. rpm has no purge:
# `rpm -e` removes unmodified config files and keeps modified ones as FILE.rpmsave.

rpm_v1=/root/kubeboot-$v1-1.$rpm_arch.rpm rpm_v2=/root/kubeboot-$v2-1.$rpm_arch.rpm
say "the .rpm on master-2 (Debian with Debian's rpm, booted)"
"$machines" create "$dir" master-2
boot master-2
ip2=$base.2
"$machines" put "$dir" master-2 "$dir/pkgs/kubeboot-$v1-1.$rpm_arch.rpm" "$rpm_v1"
"$machines" put "$dir" master-2 "$dir/pkgs/kubeboot-$v2-1.$rpm_arch.rpm" "$rpm_v2"
r0=$(reloads master-2)
on master-2 rpm -i --nodeps "$rpm_v1"
expect "master-2: rpm -q" "$(on master-2 rpm -q kubeboot)" "kubeboot-$v1-1.$rpm_arch"
[ "$(reloads master-2)" -gt "$r0" ] || fail "master-2: %post did not daemon-reload"
ok "master-2: %post ran systemctl daemon-reload"
nothing_started master-2

say "master-2: the operator configures backups and enables the units"
configure master-2 "$ip2" /etc/sysconfig
backup_now master-2
# shellcheck disable=SC2086
on master-2 systemctl enable --quiet $enabled

say "master-2: reboot; the units run"
"$machines" poweroff "$dir" master-2
boot master-2
units_ran master-2
security master-2

say "master-2: upgrade to $v2 (rpm -U)"
checkpointer_pid=$(prop master-2 kubeboot-checkpointer.service MainPID)
r0=$(reloads master-2)
on master-2 rpm -U --nodeps "$rpm_v2"
expect "master-2: rpm -q" "$(on master-2 rpm -q kubeboot)" "kubeboot-$v2-1.$rpm_arch"
[ "$(reloads master-2)" -gt "$r0" ] || fail "master-2: no daemon-reload on upgrade"
for u in $units; do expect "master-2: $u NeedDaemonReload after upgrade" "$(prop master-2 "$u" NeedDaemonReload)" no; done
on master-2 grep -qx "KUBEBOOT_BACKUP_ARGS=\"--etcd-servers http://$ip2:2379\"" /etc/sysconfig/kubeboot-backup \
  || fail "master-2: the edited /etc/sysconfig/kubeboot-backup was not kept"
ok "master-2: edited /etc/sysconfig/kubeboot-backup kept"
expect "master-2: checkpointer not restarted by the upgrade (pid)" "$(prop master-2 kubeboot-checkpointer.service MainPID)" "$checkpointer_pid"
backup_now master-2
kept=$(backups master-2)

say "master-2: rpm -e"
on master-2 rpm -e kubeboot
on master-2 rpm -q kubeboot >/dev/null 2>&1 && fail "master-2: kubeboot still installed after rpm -e"
on master-2 test ! -e /usr/bin/kubeboot || fail "master-2: /usr/bin/kubeboot left after rpm -e"
for u in kubeboot-checkpointer.service kubeboot-backup.timer; do
  expect "master-2: $u after rpm -e (%preun stopped it)" "$(on master-2 systemctl is-active "$u" || true)" inactive
done
on master-2 grep -q "http://$ip2:2379" /etc/sysconfig/kubeboot-backup.rpmsave \
  || fail "master-2: the edited config was not kept as .rpmsave"
ok "master-2: the edited config kept as /etc/sysconfig/kubeboot-backup.rpmsave"
for f in kubeboot kubeboot-checkpointer; do
  on master-2 test ! -e "/etc/sysconfig/$f" || fail "master-2: unedited /etc/sysconfig/$f left after rpm -e"
done
ok "master-2: the unedited config files removed"
expect "master-2: backups after rpm -e" "$(backups master-2)" "$kept"
"$machines" poweroff "$dir" master-2
