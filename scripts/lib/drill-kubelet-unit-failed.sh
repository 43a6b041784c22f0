# scripts/machine-drill kubelet-unit-failed: kubelet.service fails at boot. kubeboot.service
# (ensure) asks the real systemd over D-Bus, learns it at once instead of waiting out the
# boot grace, and says so in `systemctl status kubeboot` and in the journal. Sourced by
# machine-drill.

say "building kubeboot (debug) and its .deb"
build_kubeboot
base=$(pick_base)
"$machines" create "$dir" master-1
boot master-1
install_deb master-1
kubeconfig_on master-1
# The operator's flags (docs/provisioning.md); nothing serves there: ensure must stop at
# the kubelet, before any source is asked.
set_flags master-1 /etc/default/kubeboot KUBEBOOT_ENSURE_ARGS "--etcd-servers http://$base.1:2379"
# A kubelet that cannot start, as on a master whose kubelet config was never written.
# No Restart=: a unit that gives up ends "failed" (one with Restart=always is
# "activating (auto-restart)", which ensure waits out as "still starting").
unit_on master-1 kubelet.service <<'UNIT'
[Unit]
Description=kubelet (a stand-in that fails at start)
After=network-online.target
[Service]
ExecStart=/bin/sh -c 'echo "kubelet: open /var/lib/kubelet/config.yaml: no such file or directory" >&2; exit 1'
[Install]
WantedBy=multi-user.target
UNIT
on master-1 systemctl daemon-reload
on master-1 systemctl enable --quiet kubelet.service kubeboot.service

say "reboot: kubelet.service fails, kubeboot.service runs after it"
"$machines" poweroff "$dir" master-1
boot master-1
ensure_done() { [ "$(prop master-1 kubeboot.service ActiveState)" = failed ]; }
# The default boot grace is 5 min: ending well within it is ending "at once".
wait_until 60 "kubeboot.service to fail on master-1" ensure_done
expect "kubelet.service" "$(prop master-1 kubelet.service ActiveState)" failed
expect "kubeboot.service (ensure) exit" "$(prop master-1 kubeboot.service ExecMainStatus)" 1
start_us=$(prop master-1 kubeboot.service ExecMainStartTimestampMonotonic)
end_us=$(prop master-1 kubeboot.service ExecMainExitTimestampMonotonic)
ok "ensure ran $(( (end_us - start_us) / 1000 )) ms (the boot grace is 5 min)"

status=$(on master-1 systemctl status --no-pager --lines=0 kubeboot.service || true)
grep -E '^ +Status: ".*kubelet\.service is failed' <<<"$status" >/dev/null \
  || { echo "$status" >&2; fail "systemctl status kubeboot shows no STATUS line naming kubelet.service"; }
ok "systemctl status kubeboot: $(grep -m1 -E '^ +Status:' <<<"$status" | sed 's/^ *//')"

# One error entry, priority err (3), with the decision and the exit code as fields.
entry=$(on master-1 journalctl -b -q --no-pager -u kubeboot.service -p err -o json \
  | grep 'kubelet.service is failed' | tail -1)
[ -n "$entry" ] || fail "no error-priority entry of kubeboot.service names kubelet.service"
# OBJECT_SYSTEMD_UNIT: found by `-u` even when journald could not tell the unit of a
# process that had exited by the time it read the entry (src/systemd/journal.rs).
for field in '"PRIORITY":"3"' '"KUBEBOOT_DECISION":"failed"' '"KUBEBOOT_EXIT":"1"' \
             '"KUBEBOOT_COMMAND":"ensure"' '"OBJECT_SYSTEMD_UNIT":"kubeboot.service"'; do
  grep -qF "$field" <<<"$entry" || { echo "$entry" >&2; fail "the journal entry lacks $field"; }
done
ok "journal: -p err entry with KUBEBOOT_DECISION=failed, KUBEBOOT_EXIT=1"
on master-1 journalctl -b -q --no-pager -o cat -u kubeboot.service | sed 's/^/    master-1 journal: /' >&2
"$machines" poweroff "$dir" master-1
