# scripts/machine-drill smoke: scripts/machines' own test. Sourced by machine-drill.

say "smoke: a master boots, keeps its disk across a poweroff and a power loss"
"$machines" create "$dir" master-1
boot master-1
expect "host name" "$(on master-1 hostname)" master-1
on master-1 journalctl -b -q --no-pager -o cat _PID=1 | grep -m1 '^Startup finished' >&2 || true
on master-1 sh -c 'echo kept > /var/lib/smoke-disk && echo gone > /tmp/smoke-tmp && sync'
first=$(boot_id master-1)

say "clean poweroff, boot again"
"$machines" poweroff "$dir" master-1
expect "state after poweroff" "$("$machines" state "$dir" master-1)" off
expect "nspawn's exit after poweroff" "$(cat "$dir/master-1/exit")" 0
boot master-1
[ "$(boot_id master-1)" != "$first" ] || fail "the same boot id after a poweroff"
expect "a file on disk" "$(on master-1 cat /var/lib/smoke-disk)" kept
on master-1 test ! -e /tmp/smoke-tmp || fail "/tmp/smoke-tmp survived the reboot"
ok "/tmp emptied"

say "power loss: every process killed at once, no shutdown"
on master-1 sh -c 'echo written-before-power-loss > /var/lib/smoke-lost && sync'
"$machines" kill "$dir" master-1
expect "state after power loss" "$("$machines" state "$dir" master-1)" off
[ "$(cat "$dir/master-1/exit")" != 0 ] || fail "nspawn exited 0 after a power loss"
boot master-1
expect "a synced file after power loss" "$(on master-1 cat /var/lib/smoke-lost)" written-before-power-loss
expect "boots in the journal" "$(on master-1 journalctl --list-boots --no-pager -q | wc -l)" 3
# The cleanly powered-off boot logged its shutdown; the killed one has none.
shutdown_logged() { on master-1 journalctl -b "$1" -q --no-pager -o cat _PID=1 | grep '^Reached target shutdown.target' >/dev/null; }
shutdown_logged -2 || fail "the powered-off boot logged no shutdown"
shutdown_logged -1 && fail "the killed boot logged a shutdown"
ok "the killed boot's journal ends without a shutdown; the powered-off one has it"

say "a reboot from inside (systemctl reboot: nspawn exits 133 and is started again)"
before=$(boot_id master-1)
on master-1 systemctl reboot || true
rebooted() { local id; id=$(boot_id master-1 2>/dev/null) && [ "$id" != "$before" ] \
  && [ "$("$machines" state "$dir" master-1)" = running ]; }
wait_until 60 "master-1 to come back after systemctl reboot" rebooted
ok "rebooted by itself"
"$machines" poweroff "$dir" master-1
