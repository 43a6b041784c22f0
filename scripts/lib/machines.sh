# Shared by the machine drills (scripts/machine-drill): checks on masters booted by
# scripts/machines. Functions expect $dir (the machines' dir) and $machines.

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
fail() { echo "FAILED: $*" >&2; exit 1; }
ok() { echo "ok: $*" >&2; }

# on NAME CMD...: CMD inside master NAME.
on() { local name=$1; shift; "$machines" run "$dir" "$name" "$@"; }

# expect WHAT GOT WANT
expect() {
  [ "$2" = "$3" ] || fail "$1: got \"$2\", want \"$3\""
  ok "$1: $2"
}

# prop NAME UNIT PROPERTY: one property of a unit, as the machine's systemd has it.
prop() { on "$1" systemctl show -P "$3" "$2"; }

# boot NAME: power on; systemd must reach running or degraded.
boot() {
  local s
  s=$("$machines" boot "$dir" "$1") || fail "$1 did not boot"
  case $s in running|degraded) ok "$1 booted: $s" ;; *) fail "$1 booted to $s" ;; esac
}

# boot_id NAME
boot_id() { on "$1" cat /proc/sys/kernel/random/boot_id; }

# journal_has NAME PATTERN JOURNALCTL-ARGS...: an entry of this boot matches PATTERN (ERE).
journal_has() {
  local name=$1 pattern=$2; shift 2
  on "$name" journalctl -b -q --no-pager -o cat "$@" | grep -Eq -- "$pattern"
}

# reloads NAME: how many daemon-reloads the machine's systemd did this boot.
reloads() { on "$1" journalctl -b -q --no-pager -o cat _PID=1 | grep -c '^Reloading' || true; }

# pick_base: a free 127.A.B for the machines' services, outside scripts/cluster's range
# (127.20-219.x), so a machine drill and the process drills can run side by side.
pick_base() {
  local a b
  for _ in $(seq 50); do
    a=$((RANDOM % 25 + 230)); b=$((RANDOM % 250 + 1))
    if ! (exec 3<>"/dev/tcp/127.$a.$b.1/2379") 2>/dev/null; then echo "127.$a.$b"; return; fi
  done
  fail "no free 127.x.y.0/24 found"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}
