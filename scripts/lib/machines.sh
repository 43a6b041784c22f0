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
# Not `grep -q`: it stops at the first match, journalctl then dies of SIGPIPE, and under
# pipefail a long journal that matches reads as one that does not.
journal_has() {
  local name=$1 pattern=$2; shift 2
  on "$name" journalctl -b -q --no-pager -o cat "$@" | grep -E -- "$pattern" >/dev/null
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

# build_kubeboot: the debug binaries the drills install or run (kubeboot,
# kubeboot-testkit); sets $bin, and $version (Cargo.toml's, as the packages spell it).
build_kubeboot() {
  bin=${CARGO_TARGET_DIR:-$root/target}/debug
  (cd "$root" && cargo build -q --bin kubeboot && cargo build -q -p kubeboot-testkit --bin kubeboot-testkit)
  version=$(awk '/^\[/ { s = $0 } s == "[package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' \
    "$root/Cargo.toml")
  version=${version//-/\~}
}

# build_deb: the .deb of $bin/kubeboot, built once per drill into $dir/pkgs; prints its path.
build_deb() {
  local deb
  deb=$dir/pkgs/kubeboot_${version}_$(dpkg --print-architecture).deb
  [ -f "$deb" ] || "$root/scripts/package" deb --binary "$bin/kubeboot" --fast --no-install \
    --out "$dir/pkgs" >/dev/null
  echo "$deb"
}

# install_deb NAME: the .deb of $bin/kubeboot (built once per drill, into $dir/pkgs),
# installed with `dpkg -i`, as an operator installs it.
install_deb() {
  local deb
  deb=$(build_deb)
  "$machines" put "$dir" "$1" "$deb" /root/kubeboot.deb
  on "$1" dpkg -i /root/kubeboot.deb >/dev/null
  ok "$1: kubeboot $version installed (dpkg -i)"
}

# kubeconfig_on NAME: the admin kubeconfig of a rendered cluster whose api-server
# ($base.10, nothing listens there) is down, where the units look for it.
kubeconfig_on() {
  [ -f "$dir/assets/auth/kubeconfig" ] || KUBEBOOT_CONFIG=/dev/null "$bin/kubeboot" render \
    --asset-dir "$dir/assets" --api-servers "https://$base.10:6443" >/dev/null
  "$machines" put "$dir" "$1" "$dir/assets/auth/kubeconfig" /etc/kubernetes/kubeconfig
  on "$1" chmod 0600 /etc/kubernetes/kubeconfig
}

# set_flags NAME FILE VAR VALUE: the operator's one-line edit of a flags file.
set_flags() { on "$1" sed -i "s|^$3=.*|$3=\"$4\"|" "$2"; }

# unit_on NAME UNIT: installs the unit file read from stdin as /etc/systemd/system/UNIT.
unit_on() {
  local f
  f=$(mktemp)
  cat > "$f"
  "$machines" put "$dir" "$1" "$f" "/etc/systemd/system/$2"
  rm -f "$f"
}
