# record_rto NAME SECONDS: a drill's RTO, also as a line `NAME<TAB>SECONDS<TAB>COMMIT` in
# $KUBEBOOT_RTO_FILE (default target/drills/rto.tsv), which scripts/bench renders
# (scripts/lib/bench-table.py). scripts/test starts the file afresh before its drills;
# drills running side by side append whole lines (one short write each). COMMIT is the
# checkout's, `-dirty` with changes not committed. Never fails the drill: a file it
# cannot write is reported.
record_rto() {
  local file=${KUBEBOOT_RTO_FILE:-$root/target/drills/rto.tsv} commit
  if commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
    git -C "$root" diff --quiet HEAD -- 2>/dev/null || commit=$commit-dirty
  else
    commit=unknown
  fi
  { mkdir -p "$(dirname "$file")" && printf '%s\t%s\t%s\n' "$1" "$2" "$commit" >>"$file"; } \
    || echo "could not append the RTO to $file" >&2
}
