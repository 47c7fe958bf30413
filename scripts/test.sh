#!/usr/bin/env bash
# Runs the whole test suite — what `cargo test --workspace --locked --no-fail-fast` runs — then
# accounts for every test a runner reported as ignored. Arguments before `--` go to cargo, after it
# to every test binary.
#
# The test binaries run SKIFF_TEST_JOBS (default 3) at a time, longest first, each in its package's
# directory as cargo runs them; a binary's output is printed whole, under cargo's "Running" line,
# when it ends. Most e2e time is spent waiting on daemons and clusters, not on the 2 cores.
#
# A test that cannot run must say so to its runner (`#[ignore = "reason"]`, libtest-mimic's
# ignored). With CI=true an ignored test is allowed only when tests/host-blocked.txt lists it with
# the reason the runner printed; any other ignored test fails the run, and so does an ignored
# count the runners report that cannot be matched to test names (e.g. under `cargo test -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
allowed_file=tests/host-blocked.txt
log=$(mktemp "${TMPDIR:-/tmp}/skiff-test-log.XXXXXX")

cargo_args=() test_args=() seen_dashes=""
for a in "$@"; do
  if [ -z "$seen_dashes" ] && [ "$a" = -- ]; then seen_dashes=1; continue; fi
  if [ -n "$seen_dashes" ]; then test_args+=("$a"); else cargo_args+=("$a"); fi
done

# The whole workspace unless packages are named.
scope=(--workspace)
for a in ${cargo_args[@]+"${cargo_args[@]}"}; do
  case "$a" in -p | --package | -p* | --package=*) scope=() ;; esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/skiff-test-run.XXXXXX")
trap 'rm -rf "$log" "$work"' EXIT

status=0
# Build everything first; the JSON names each test binary and its package.
cargo test ${scope[@]+"${scope[@]}"} --locked --no-run --message-format=json-render-diagnostics \
  ${cargo_args[@]+"${cargo_args[@]}"} >"$work/artifacts.json" || status=$?
if [ "$status" -ne 0 ]; then
  echo "== the tests did not build" >&2
  exit "$status"
fi
jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
       | [(.manifest_path | sub("/Cargo.toml$"; "")), .target.src_path, .executable] | @tsv' \
  "$work/artifacts.json" | sort -u >"$work/binaries.tsv"

# Longest first (seconds of the last cold CI run); unknown binaries after them, in cargo's order.
weight() {
  case "$1" in
    */kube_pods.rs) echo 120 ;; */kubectl.rs) echo 51 ;; */docker_cli.rs) echo 26 ;;
    */compose.rs) echo 23 ;; */kube_multinode.rs) echo 16 ;; */kube_metrics.rs) echo 11 ;;
    */job.rs) echo 10 ;; */server_crash.rs) echo 10 ;; */nodelifecycle.rs) echo 8 ;;
    *) echo 1 ;;
  esac
}
n=0
while IFS=$'\t' read -r dir src exe; do
  n=$((n + 1))
  printf '%s\t%s\t%s\t%s\t%s\n' "$(weight "$src")" "$n" "$dir" "$src" "$exe"
done <"$work/binaries.tsv" | sort -t$'\t' -k1,1nr -k2,2n | cut -f2- >"$work/queue.tsv"

run_one() { # index dir src exe: the binary's whole output, under cargo's header, into its own file
  local i=$1 dir=$2 src=$3 exe=$4 out="$work/out.$1" rel
  rel=${src#"$dir"/}
  local code=0
  echo "     Running $rel ($exe)" >"$out.part"
  (cd "$dir" && "$exe" ${test_args[@]+"${test_args[@]}"}) >>"$out.part" 2>&1 || code=$?
  echo "__exit $code" >>"$out.part"
  mv "$out.part" "$out"
}
jobs_max=${SKIFF_TEST_JOBS:-3}
(
  running=0
  while IFS=$'\t' read -r i dir src exe; do
    if [ "$running" -ge "$jobs_max" ]; then
      wait -n || true
      running=$((running - 1))
    fi
    run_one "$i" "$dir" "$src" "$exe" &
    running=$((running + 1))
  done <"$work/queue.tsv"
  wait
) &
queue_pid=$!
# Print each binary's output as it completes.
printed=" "
total=$(wc -l <"$work/queue.tsv")
while :; do
  for f in "$work"/out.*; do
    [ -e "$f" ] || continue
    case "$f" in *.part) continue ;; esac
    case "$printed" in *" ${f##*/} "*) continue ;; esac
    grep -v '^__exit ' "$f" | tee -a "$log"
    code=$(sed -n 's/^__exit //p' "$f")
    if [ "$code" != 0 ]; then
      status=101
      echo "error: test failed: $(head -n1 "$f" | sed 's/^ *Running //') (exit $code)" | tee -a "$log"
    fi
    printed="$printed${f##*/} "
  done
  done_count=$(($(wc -w <<<"$printed")))
  if [ "$done_count" -ge "$total" ]; then break; fi
  sleep 1
done
wait "$queue_pid" || true

# Doc tests, which have no binary of their own.
cargo test ${scope[@]+"${scope[@]}"} --locked --doc ${cargo_args[@]+"${cargo_args[@]}"} \
  -- ${test_args[@]+"${test_args[@]}"} 2>&1 | tee -a "$log" || status=$?

# One tab-separated record per ignored test: binary, name, reason; then a line "total P F I" with
# the sums of the runners' own "test result:" lines.
#   libtest:       test NAME ... ignored[, REASON]
#   libtest-mimic: test NAME ... ignored[ (REASON)]
records=$(awk '
  /^ +Running / { bin = $NF; sub(/^\(/, "", bin); sub(/\)$/, "", bin); n = split(bin, p, "/");
                  bin = p[n]; sub(/-[0-9a-f]+$/, "", bin); next }
  /^ +Doc-tests / { bin = "doc-tests " $2; next }
  /^test .* \.\.\. ignored/ {
    line = $0; sub(/^test /, "", line)
    i = index(line, " ... ignored"); name = substr(line, 1, i - 1); sub(/ +$/, "", name)
    reason = substr(line, i + length(" ... ignored"))
    if (reason ~ /^, /) reason = substr(reason, 3)
    else if (reason ~ /^ \(.*\)$/) reason = substr(reason, 3, length(reason) - 3)
    printf "%s\t%s\t%s\n", bin, name, reason; next }
  /^test result: / {
    for (k = 1; k <= NF; k++) {
      if ($(k+1) ~ /^passed/) passed += $k
      if ($(k+1) ~ /^failed/) failed += $k
      if ($(k+1) ~ /^ignored/) ignored += $k
    } }
  END { printf "total %d %d %d\n", passed, failed, ignored }
' "$log")
read -r _ passed failed ignored_total <<<"$(tail -n1 <<<"$records")"
ignored=$(sed '$d' <<<"$records")

# The allowed list: "glob reason-text" per line, comments and blank lines skipped.
globs=() texts=()
while read -r glob text; do
  case "$glob" in '' | '#'*) continue ;; esac
  [ -n "$text" ] || { echo "$allowed_file: '$glob' needs the reason text its runner prints" >&2; exit 2; }
  globs+=("$glob") texts+=("$text")
done <"$allowed_file"

allowed=0 refused=()
while IFS=$'\t' read -r bin name reason; do
  [ -n "$name" ] || continue
  ok=""
  for i in "${!globs[@]}"; do
    # shellcheck disable=SC2053 # the entry is a glob on purpose
    if [[ $name == ${globs[$i]} && $reason == *"${texts[$i]}"* ]]; then ok=1; break; fi
  done
  if [ -n "$ok" ]; then
    allowed=$((allowed + 1))
  else
    refused+=("$bin: $name (${reason:-no reason given})")
  fi
done <<<"$ignored"
named=$((allowed + ${#refused[@]}))

echo
echo "== ignored tests: $ignored_total; host-blocked as listed in $allowed_file: $allowed; others: ${#refused[@]}"
for r in "${refused[@]}"; do echo "   $r"; done
problem=""
if [ "$named" -ne "$ignored_total" ]; then
  echo "== the runners counted $ignored_total ignored tests but $named could be named (quiet output?)"
  problem=1
fi
if [ ${#refused[@]} -gt 0 ]; then problem=1; fi
echo "total: $passed passed, $failed failed, $ignored_total skipped"

if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ -n "$problem" ] && [ "${CI:-}" = true ]; then
  echo "== CI=true: only the host-blocked tests listed in $allowed_file may be skipped" >&2
  exit 1
fi
