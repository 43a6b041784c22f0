# cloud-init: docs/provisioning.md's cloud-init example, read from the doc, provisions a
# master at its first boot as NoCloud seed data (Debian's cloud-init in the root fs; the
# seed's network-config turns cloud-init's networking off: the machines share the
# host's). master-1 must come up with kubeboot installed, /etc/kubeboot/config.toml
# written 0600 and passing `kubeboot config check`, kubeboot.service and
# kubeboot-backup.timer enabled (the timer waiting, the oneshot not started), and
# `cloud-init status` done. master-2 gets the same example with one key misspelt in the
# config: `kubeboot config check` refuses it, so no unit is enabled, cloud-init says
# error, and its output log has the check's one-line reason.
build_kubeboot
example=$(awk '/^## cloud-init/ { f = 1 } f && /^```yaml/ { y = 1; next } y && /^```/ { exit } y' \
  "$root/docs/provisioning.md")
head -1 <<<"$example" | grep -qx '#cloud-config' || fail "docs/provisioning.md has no #cloud-config example under ## cloud-init"
deb=$(build_deb)
named=$(grep -o '/var/cache/kubeboot/kubeboot_[^ ]*\.deb' <<<"$example" | head -1)
[ "${named##*/}" = "${deb##*/}" ] \
  || fail "docs/provisioning.md installs ${named:-no .deb}, the build is ${deb##*/}: update the example"
bad_example=$(sed 's/^\( *\)backup-restore-node = /\1backup-restore-nodes = /' <<<"$example")
[ "$bad_example" != "$example" ] || fail "the example has no backup-restore-node line to misspell"

# seed NAME USER-DATA: a blank disk with the image's .deb and the NoCloud seed.
seed() {
  local f
  "$machines" create "$dir" "$1"
  "$machines" put "$dir" "$1" "$deb" "$named"
  f=$(mktemp)
  printf 'instance-id: iid-%s\nlocal-hostname: %s\n' "$1" "$1" > "$f"
  "$machines" put "$dir" "$1" "$f" /var/lib/cloud/seed/nocloud/meta-data
  printf 'network:\n  config: disabled\n' > "$f"
  "$machines" put "$dir" "$1" "$f" /var/lib/cloud/seed/nocloud/network-config
  printf '%s\n' "$2" > "$f"
  "$machines" put "$dir" "$1" "$f" /var/lib/cloud/seed/nocloud/user-data
  rm -f "$f"
}
seed master-1 "$example"
seed master-2 "$bad_example"
export KUBEBOOT_MACHINES_BOOT_TIMEOUT=240

say "master-1: first boot with the example as its NoCloud seed"
t0=$SECONDS
boot master-1
expect "master-1: cloud-init status" "$(on master-1 cloud-init status | sed -n 's/^status: //p')" done
ok "master-1 provisioned in $((SECONDS - t0)) s (boot to cloud-init done)"
expect "master-1: kubeboot installed" "$(on master-1 dpkg-query -W -f '${Status} ${Version}' kubeboot)" \
  "install ok installed $version"
expect "master-1: /etc/kubeboot/config.toml mode" "$(on master-1 stat -c %a /etc/kubeboot/config.toml)" 600
on master-1 kubeboot config check >&2 || fail "master-1: kubeboot config check refuses the example's config"
expect "master-1: kubeboot.service" "$(on master-1 systemctl is-enabled kubeboot.service)" enabled
expect "master-1: kubeboot-backup.timer" "$(on master-1 systemctl is-enabled kubeboot-backup.timer)/$(prop master-1 kubeboot-backup.timer ActiveState)" enabled/active
expect "master-1: kubeboot.service not run at provisioning" "$(prop master-1 kubeboot.service ActiveState)" inactive

say "master-2: the same example with backup-restore-node misspelt in the config"
boot master-2
expect "master-2: cloud-init status" "$(on master-2 cloud-init status | sed -n 's/^status: //p')" error
expect "master-2: kubeboot installed" "$(on master-2 dpkg-query -W -f '${Status}' kubeboot)" "install ok installed"
for u in kubeboot.service kubeboot-backup.timer; do
  expect "master-2: $u" "$(on master-2 systemctl is-enabled "$u" || true)" disabled
done
reason=$(on master-2 grep -E 'config\.toml' /var/log/cloud-init-output.log | head -1)
[ -n "$reason" ] || fail "master-2: /var/log/cloud-init-output.log does not say what is wrong"
ok "master-2: cloud-init-output.log says: $reason"
