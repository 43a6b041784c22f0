# scripts/machine-drill watchdog: the checkpointer hangs; the real systemd notices through
# WatchdogSec=, kills it and starts it again, and the journal shows it. Sourced by
# machine-drill.
#
# The hang is SIGSTOP from outside, not a hook in the product: a stopped process is the
# hardest hang there is (nothing of it runs), and kubeboot pings (`WATCHDOG=1`) only at
# the end of each of its cycles (src/checkpoint/daemon.rs), so any hang of a cycle stops
# the pings the same way.

say "building kubeboot (debug) and its .deb"
build_kubeboot
base=$(pick_base)
"$machines" create "$dir" master-1
boot master-1
install_deb master-1
kubeconfig_on master-1
# The drill's own drop-in: the unit's 3 min watchdog made short, and the abort's
# SIGKILL (TimeoutAbortSec=, else TimeoutStopSec=, 3 min) too. The checkpointer's cycle
# is 5 s, so 15 s leaves it room for two.
on master-1 mkdir -p /etc/systemd/system/kubeboot-checkpointer.service.d
printf '[Service]\nWatchdogSec=15s\nTimeoutAbortSec=5s\nRestartSec=1s\n' \
  | unit_on master-1 kubeboot-checkpointer.service.d/drill.conf
on master-1 systemctl daemon-reload
on master-1 systemctl enable --now --quiet kubeboot-checkpointer.service
expect "WatchdogUSec" "$(prop master-1 kubeboot-checkpointer.service WatchdogUSec)" 15s
running() { [ "$(prop master-1 kubeboot-checkpointer.service SubState)" = running ]; }
wait_until 30 "the checkpointer to be running" running

say "it pings: systemd's last-ping time moves on and nothing restarts it"
ping_at() { prop master-1 kubeboot-checkpointer.service WatchdogTimestampMonotonic; }
first=$(ping_at)
[ -n "$first" ] && [ "$first" != 0 ] || fail "systemd has no watchdog ping from the checkpointer"
pinged_since() { local t; t=$(ping_at); [ "$t" -gt "$1" ]; }
second_ping() { pinged_since "$first"; }
wait_until 30 "a second WATCHDOG=1" second_ping
third=$(ping_at)
third_ping() { pinged_since "$third"; }
wait_until 30 "a third WATCHDOG=1" third_ping
expect "restarts while it pings" "$(prop master-1 kubeboot-checkpointer.service NRestarts)" 0

say "hang: SIGSTOP the checkpointer"
pid=$(prop master-1 kubeboot-checkpointer.service MainPID)
on master-1 kill -STOP "$pid"
restarted() {
  [ "$(prop master-1 kubeboot-checkpointer.service NRestarts)" -ge 1 ] \
    && [ "$(prop master-1 kubeboot-checkpointer.service MainPID)" != "$pid" ] && running
}
wait_until 60 "systemd to kill and restart the hung checkpointer" restarted
ok "restarted: pid $pid -> $(prop master-1 kubeboot-checkpointer.service MainPID)"
journal_has master-1 'kubeboot-checkpointer\.service: Watchdog timeout' \
  || fail "the journal shows no watchdog timeout for kubeboot-checkpointer.service"
on master-1 journalctl -b -q --no-pager -o cat -u kubeboot-checkpointer.service \
  | grep -E 'Watchdog timeout|Killing process|Main process exited|Scheduled restart|first cycle done' \
  | sed 's/^/    master-1 journal: /' >&2
ok "the journal shows the watchdog timeout and the restart"
"$machines" poweroff "$dir" master-1
