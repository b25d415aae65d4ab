#!/usr/bin/env bash
# make bench-pull: gptoss against the real peer tools on the same data, in one
# run, on loopback. A local Hugging Face test hub (bin/gptoss-testhub) serves a
# gpt-oss-shaped checkpoint as openai/gpt-oss-20b; every tool downloads the
# same file set (the "hf" files gptoss selects: config, tokenizer, index and
# the shards it names); every output is checked against the hub's SHA-256s
# (outside the timed region); medians and ratios are printed, and the results
# are written to .bench/results-<date>.json.
#
# Scenarios (each with its own hub process):
#   capped    every file response capped at $BENCH_RATE (default 50MB) per
#             connection, as a CDN does per connection
#   uncapped  no cap: the disk, SHA-256 and the loopback are the limit
#
# Rows (interleaved, order rotated each repetition, `sync` before each run,
# output deleted after each run):
#   gptoss              bin/gptoss pull 20b --quiet (fresh GPTOSS_HOME; verifies while downloading)
#   gptoss-c16          the same with --connections 16 (the default is 32)
#   aria2c              aria2c -x16 -s16 -j<nfiles> -i <input file with out= names>
#   aria2c+sha256sum    the aria2c run plus sha256sum of the files afterwards
#                       (what gptoss does as it downloads; sha256sum runs nproc files at a time)
#   curl                curl -sSfL --parallel --parallel-immediate --parallel-max 16 (one
#                       connection per file, all files at once: without --parallel-immediate
#                       curl waits to see whether it can multiplex, and starts them in turn)
#   huggingface.js      @huggingface/hub: modelInfo + downloadFileToCacheDir per file in
#                       turn, i.e. snapshotDownload restricted to the same files
#
# Environment:
#   BENCH_SIZE=4GiB        fixture size (e.g. 512MiB for a quick run); cached in .bench/
#   BENCH_REPS=3           repetitions (median reported)
#   BENCH_RATE=50MB        per-connection cap of the capped scenario
#   BENCH_TIMEOUT=900      seconds allowed for one tool run
#   BENCH_SCENARIOS="capped uncapped"
#   BENCH_TOOLS="gptoss gptoss-c16 aria2c curl huggingface.js"
#   BENCH_KEEP_LOGS=1      keep .bench/run-<date>/ (plans, logs); default: kept on failure only
#
# Installs what it needs when missing: aria2 and curl (and nodejs/npm) with apt
# (root), @huggingface/hub into .tools/npm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-bin}
SIZE=${BENCH_SIZE:-4GiB}
REPS=${BENCH_REPS:-3}
RATE=${BENCH_RATE:-50MB}
TMO=${BENCH_TIMEOUT:-900}
SCENARIOS=${BENCH_SCENARIOS:-capped uncapped}
TOOLS=${BENCH_TOOLS:-gptoss gptoss-c16 aria2c curl huggingface.js}
REPO=openai/gpt-oss-20b
HFJS_VERSION=2.17.5
BENCH=$ROOT/.bench
NPM_PREFIX=$ROOT/.tools/npm
NPROC=$(nproc)

say() { printf '%s\n' "$*" >&2; }
die() { say "bench-pull: $*"; exit 1; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", n / s / 1e6 }'; }

# ---------------------------------------------------------------- tools
install_tools() {
  local pkgs=()
  command -v aria2c >/dev/null || pkgs+=(aria2)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  if ((${#pkgs[@]})); then
    [ "$(id -u)" = 0 ] || die "missing ${pkgs[*]}: run as root, or: sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
    command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get to install them"
    say "== installing ${pkgs[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  local t
  for t in aria2c curl node npm sha256sum timeout dd sync awk xargs; do
    command -v "$t" >/dev/null || die "$t is still missing after the install step"
  done
  local have
  have=$(node -p "require('$NPM_PREFIX/node_modules/@huggingface/hub/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$HFJS_VERSION" ]; then
    say "== installing @huggingface/hub@$HFJS_VERSION into .tools/npm"
    mkdir -p "$NPM_PREFIX"
    npm install --no-audit --no-fund --loglevel=error --prefix "$NPM_PREFIX" "@huggingface/hub@$HFJS_VERSION" >&2
    have=$(node -p "require('$NPM_PREFIX/node_modules/@huggingface/hub/package.json').version" 2>/dev/null || true)
    [ "$have" = "$HFJS_VERSION" ] || die "@huggingface/hub@$HFJS_VERSION is not in $NPM_PREFIX after npm install"
  fi
  [ -x "$BIN/gptoss" ] && [ -x "$BIN/gptoss-testhub" ] || die "$BIN/gptoss or $BIN/gptoss-testhub missing: run make build (or make bench-pull)"
}

# ---------------------------------------------------------------- state, cleanup
STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$BENCH/run-$STAMP
OUT=$BENCH/out
hub_pid=
status=1
cleanup() {
  if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
  rm -rf "$OUT" "$BENCH/dd.tmp"
  if [ "$status" = 0 ] && [ "${BENCH_KEEP_LOGS:-}" != 1 ]; then rm -rf "$RUN"; elif [ -d "$RUN" ]; then say "logs: $RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a tools <<<"$TOOLS"
known="gptoss gptoss-c16 aria2c curl huggingface.js"
for t in "${tools[@]}"; do
  case " $known " in *" $t "*) ;; *) die "unknown tool '$t' in BENCH_TOOLS (known: $known)" ;; esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
install_tools
mkdir -p "$RUN" "$BENCH"
: >"$RUN/raw.tsv"; : >"$RUN/scenarios.tsv"; : >"$RUN/tools.tsv"; : >"$RUN/ceilings.tsv"

# ---------------------------------------------------------------- fixture
tag=$(printf %s "$SIZE" | tr 'A-Z' 'a-z'); tag=${tag%ib}; tag=${tag%b}
FIX=$BENCH/fixture-$tag
if [ ! -f "$FIX.ok" ]; then
  say "== generating the $SIZE fixture in ${FIX#"$ROOT"/} (once)"
  rm -rf "$FIX" "$FIX.tmp"
  "$BIN/gptoss-testhub" gen --out "$FIX.tmp" --size "$SIZE" >&2
  mv "$FIX.tmp" "$FIX"
  touch "$FIX.ok"
fi

# ---------------------------------------------------------------- hub
start_hub() { # NAME RATE
  rm -f "$RUN/ready-$1"
  "$BIN/gptoss-testhub" --repo "$REPO=$FIX" --rate "$2" --ready-file "$RUN/ready-$1" >"$RUN/hub-$1.log" 2>&1 &
  hub_pid=$!
  local i
  for i in $(seq 100); do
    [ -s "$RUN/ready-$1" ] && break
    kill -0 "$hub_pid" 2>/dev/null || { cat "$RUN/hub-$1.log" >&2; die "the test hub exited"; }
    sleep 0.1
  done
  [ -s "$RUN/ready-$1" ] || { cat "$RUN/hub-$1.log" >&2; die "the test hub did not become ready"; }
  HF_ENDPOINT=$(sed -n 's/^HF_ENDPOINT=//p' "$RUN/ready-$1")
  export HF_ENDPOINT
}
stop_hub() {
  kill "$hub_pid" 2>/dev/null || true
  wait "$hub_pid" 2>/dev/null || true
  hub_pid=
}

# The file set: what `gptoss pull 20b --dry-run --json` selects, with sizes and
# SHA-256s from the hub's tree listing; URLs are $HF_ENDPOINT/REPO/resolve/main/PATH.
make_plan() { # DIR
  mkdir -p "$1"
  curl -sSf "$HF_ENDPOINT/api/models/$REPO/tree/main?recursive=true" -o "$1/tree.json"
  GPTOSS_HOME="$1/dry-home" "$BIN/gptoss" pull 20b --dry-run --json >"$1/dryrun.json"
  rm -rf "$1/dry-home"
  read -r NFILES BYTES < <(node scripts/bench/util.mjs plan "$1/tree.json" "$1/dryrun.json" "$HF_ENDPOINT" "$REPO" "$1")
  [ "${NFILES:-0}" -gt 0 ] || die "empty file set"
}

# ---------------------------------------------------------------- commands
# Printed and recorded as run (PLAN = the scenario's plan folder, OUT = a fresh folder).
declare -A CMD=(
  [gptoss]="GPTOSS_HOME=OUT/home bin/gptoss pull 20b --quiet"
  [gptoss-c16]="GPTOSS_HOME=OUT/home bin/gptoss pull 20b --quiet --connections 16"
  [aria2c]="aria2c -x16 -s16 -jNFILES -d OUT -i PLAN/aria2.txt --console-log-level=warn --summary-interval=0 --download-result=hide"
  [aria2c+sha256sum]="(aria2c as above; sync, untimed) then: cd OUT && xargs -a PLAN/paths.txt -d '\\n' -P$NPROC -n1 sha256sum"
  [curl]="cd OUT && curl -sSfL --parallel --parallel-immediate --parallel-max 16 --create-dirs -K PLAN/curl.cfg   (curl.cfg: url = .../resolve/main/PATH, output = PATH, per file)"
  [huggingface.js]="node scripts/bench/hfjs.mjs OUT/cache PLAN/paths.txt   (@huggingface/hub@$HFJS_VERSION: modelInfo, then downloadFileToCacheDir per file in turn)"
)

# run_tool SCENARIO REP TOOL: one timed run, verified, recorded in raw.tsv.
run_tool() {
  local sc=$1 rep=$2 tool=$3 plan=$RUN/plan-$1
  local out=$OUT/$tool log=$RUN/$1-$2-$3 rc=0 t0 t1 t2 t3 t4 dir st=ok
  rm -rf "$out"; mkdir -p "$out"; sync
  t0=$(now)
  case $tool in
    gptoss) GPTOSS_HOME=$out/home timeout "$TMO" "$BIN/gptoss" pull 20b --quiet >"$log.out" 2>"$log.err" || rc=$? ;;
    gptoss-c16) GPTOSS_HOME=$out/home timeout "$TMO" "$BIN/gptoss" pull 20b --quiet --connections 16 >"$log.out" 2>"$log.err" || rc=$? ;;
    aria2c)
      timeout "$TMO" aria2c -x16 -s16 -j"$NFILES" -d "$out" -i "$plan/aria2.txt" \
        --console-log-level=warn --summary-interval=0 --download-result=hide >"$log.out" 2>"$log.err" || rc=$? ;;
    curl)
      (cd "$out" && timeout "$TMO" curl -sSfL --parallel --parallel-immediate --parallel-max 16 --create-dirs -K "$plan/curl.cfg") \
        >"$log.out" 2>"$log.err" || rc=$? ;;
    huggingface.js) timeout "$TMO" node scripts/bench/hfjs.mjs "$out/cache" "$plan/paths.txt" >"$log.out" 2>"$log.err" || rc=$? ;;
    *) die "unknown tool $tool" ;;
  esac
  t1=$(now)
  sync
  t2=$(now)
  if [ "$rc" = 124 ]; then st=timeout
  elif [ "$rc" != 0 ]; then st=fail-rc$rc
  fi
  local hs=
  if [ "$tool" = aria2c ] && [ "$st" = ok ]; then
    t3=$(now)
    (cd "$out" && xargs -a "$plan/paths.txt" -d '\n' -P"$NPROC" -n1 sha256sum) >"$log.sums" 2>>"$log.err" || st=fail-sha256sum
    t4=$(now)
    hs=$(secs "$t3" "$t4")
    [ "$st" = ok ] && { node scripts/bench/util.mjs checksums "$log.sums" "$plan/files.json" 2>>"$log.err" || st=bad; }
  fi
  if [ "$st" = ok ]; then
    case $tool in
      gptoss*|huggingface.js) dir=$(tail -n1 "$log.out") ;;
      *) dir=$out ;;
    esac
    [ -n "$dir" ] && [ -d "$dir" ] || { st=bad; echo "no output folder: '$dir'" >>"$log.err"; }
    [ "$st" = ok ] && { node scripts/bench/util.mjs verify "$dir" "$plan/files.json" 2>>"$log.err" || st=bad; }
  fi
  local s ss
  s=$(secs "$t0" "$t1"); ss=$(secs "$t1" "$t2")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$rep" "$tool" "$s" "$ss" "$st" >>"$RUN/raw.tsv"
  printf '   %-9s rep %d  %-16s %8ss  sync %6ss  %s\n' "$sc" "$rep" "$tool" "$s" "$ss" "$st" >&2
  if [ "$tool" = aria2c ]; then
    local s2=
    [ -n "$hs" ] && s2=$(awk -v a="$s" -v b="$hs" 'BEGIN { printf "%.3f", a + b }')
    [ "$st" = ok ] || s2=$s
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$rep" "aria2c+sha256sum" "$s2" "$ss" "$st" >>"$RUN/raw.tsv"
    printf '   %-9s rep %d  %-16s %8ss  sync %6ss  %s\n' "$sc" "$rep" "aria2c+sha256sum" "$s2" "$ss" "$st" >&2
  fi
  if [ "$st" != ok ]; then
    say "   !! $tool failed ($st): last lines of $log.err:"
    tail -n 5 "$log.err" >&2 || true
  fi
  rm -rf "$out"; sync
}

# ---------------------------------------------------------------- ceilings
ceilings() {
  say "== machine ceilings"
  local t0 t1 big
  sync
  t0=$(now)
  dd if=/dev/zero of="$BENCH/dd.tmp" bs=4M count=256 conv=fsync status=none
  t1=$(now)
  rm -f "$BENCH/dd.tmp"; sync
  printf 'disk: sequential write 1 GiB + fsync (dd)\t%s\n' "$(mbps 1073741824 "$(secs "$t0" "$t1")")" >>"$RUN/ceilings.tsv"
  big=$(ls -S "$FIX"/*.safetensors | head -n1)
  cat "$big" >/dev/null
  t0=$(now); sha256sum "$big" >/dev/null; t1=$(now)
  printf 'sha256sum (coreutils), one page-cached file\t%s\n' "$(mbps "$(stat -c %s "$big")" "$(secs "$t0" "$t1")")" >>"$RUN/ceilings.tsv"
  printf 'SHA-256 in memory, OpenSSL (node crypto)\t%s MB/s\n' "$(node scripts/bench/util.mjs sha256speed 1024)" >>"$RUN/ceilings.tsv"
  sed 's/^/   /; s/\t/: /' "$RUN/ceilings.tsv" >&2
}

# ---------------------------------------------------------------- main
for t in gptoss gptoss-c16 aria2c aria2c+sha256sum curl huggingface.js; do
  want=$t
  [ "$t" = aria2c+sha256sum ] && want=aria2c
  if [[ " $TOOLS " == *" $want "* ]]; then printf '%s\t%s\n' "$t" "${CMD[$t]}" >>"$RUN/tools.tsv"; fi
done

say "== bench-pull: fixture $SIZE, $REPS rep(s), scenarios: $SCENARIOS; tools: $TOOLS"
# The hub serves the fixture from the page cache (as a CDN from RAM); read it once.
cat "$FIX"/*.safetensors >/dev/null
ceilings

for sc in $SCENARIOS; do
  case $sc in
    capped) rate=$RATE; desc="--rate $RATE per connection (CDN-like)" ;;
    uncapped) rate=0; desc="uncapped loopback (disk and SHA-256 are the limit)" ;;
    *) die "unknown scenario '$sc' (capped, uncapped)" ;;
  esac
  start_hub "$sc" "$rate"
  make_plan "$RUN/plan-$sc"
  printf '%s\t%s\n' "$sc" "$desc" >>"$RUN/scenarios.tsv"
  say "== $sc: $desc; $HF_ENDPOINT; $NFILES files, $BYTES bytes"
  if [ "$sc" = uncapped ]; then
    big=$(ls -S "$FIX"/*.safetensors | head -n1)
    t0=$(now)
    curl -sSfL -o /dev/null "$HF_ENDPOINT/$REPO/resolve/main/$(basename "$big")"
    t1=$(now)
    printf 'loopback HTTP, 1 connection to /dev/null (curl)\t%s\n' "$(mbps "$(stat -c %s "$big")" "$(secs "$t0" "$t1")")" >>"$RUN/ceilings.tsv"
    tail -n1 "$RUN/ceilings.tsv" | sed 's/^/   /; s/\t/: /' >&2
  fi
  n=${#tools[@]}
  for ((rep = 1; rep <= REPS; rep++)); do
    for ((i = 0; i < n; i++)); do
      run_tool "$sc" "$rep" "${tools[$(((i + rep - 1) % n))]}"
    done
  done
  stop_hub
done

{
  printf 'date\t%s\n' "$(date -Iseconds)"
  printf 'fixtureSize\t%s\n' "$SIZE"
  printf 'bytes\t%s\n' "$BYTES"
  printf 'nfiles\t%s\n' "$NFILES"
  printf 'reps\t%s\n' "$REPS"
  printf 'rate\t%s\n' "$RATE"
  printf 'timeoutSeconds\t%s\n' "$TMO"
  printf 'machine\t%s\n' "$(uname -srm), $NPROC cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(df -T "$BENCH" | awk 'NR == 2 { print $2 }') disk"
  if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    printf 'gptossCommit\t%s\n' "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty)"
  fi
  printf 'gptossBinarySha256\t%s\n' "$(sha256sum "$BIN/gptoss" | cut -c1-16)"
  printf 'aria2c\t%s\n' "$(aria2c --version | head -n1)"
  printf 'curl\t%s\n' "$(curl --version | head -n1 | cut -d' ' -f1-2)"
  printf 'node\t%s\n' "$(node --version)"
  printf 'huggingfaceHub\t%s\n' "$HFJS_VERSION"
} >"$RUN/meta.tsv"

rc=0
node scripts/bench/util.mjs report "$RUN" "$BENCH/results-$STAMP.json" || rc=$?
status=$rc
exit "$rc"
