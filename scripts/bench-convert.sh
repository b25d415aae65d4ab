#!/usr/bin/env bash
# make bench-convert: how fast `gptoss convert` writes the GPU-ready layout,
# against `cp` of the same shard bytes to the same disk.
#
# A gpt-oss-shaped checkpoint (bin/gptoss-testhub gen --size $BENCH_SIZE,
# reused from .bench/fixture-<size> when present) is pulled into a fresh
# cache with --no-convert (not timed). Then, interleaved, $BENCH_REPS times:
#   convert   gptoss convert 20b, then sync (before each run the conversion
#             record, referrers.json, is deleted and `gptoss gc` deletes the
#             old layout)
#   cp        cp of the cache's shard blobs to a directory on the same disk,
#             then sync
# Both read the same bytes (warm in the page cache after the pull, for both)
# and write about the same amount. Medians and convert/cp speed are printed.
#
# Environment: BENCH_SIZE=4GiB, BENCH_REPS=3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-bin}
SIZE=${BENCH_SIZE:-4GiB}
REPS=${BENCH_REPS:-3}
BENCH=$ROOT/.bench

say() { printf '%s\n' "$*" >&2; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

case $SIZE in 4GiB) tag=4g ;; 256MiB) tag=256m ;; *) tag=$(echo "$SIZE" | tr 'A-Z' 'a-z') ;; esac
FIX=$BENCH/fixture-$tag
mkdir -p "$BENCH"
if [ ! -e "$FIX.ok" ]; then
  say "== generating a $SIZE fixture in $FIX"
  rm -rf "$FIX" "$FIX.tmp"
  "$BIN/gptoss-testhub" gen --out "$FIX.tmp" --size "$SIZE" >&2
  mv "$FIX.tmp" "$FIX" && touch "$FIX.ok"
fi

RUN=$BENCH/convert-run
rm -rf "$RUN"
mkdir -p "$RUN"
trap 'rm -rf "$RUN"' EXIT
export GPTOSS_HOME=$RUN/home GPTOSS_FORCE=1
say "== pulling the fixture into $GPTOSS_HOME (--no-convert, not timed)"
"$BIN/gptoss" pull 20b --from "$FIX" --no-convert --quiet >/dev/null
snap=$("$BIN/gptoss" path 20b)
shards=()
for f in "$snap"/*.safetensors; do shards+=("$(readlink -f "$f")"); done
bytes=$(du -cb "${shards[@]}" | tail -1 | cut -f1)
cp "$GPTOSS_HOME/index.json" "$RUN/index.unconverted.json"
say "   ${#shards[@]} shards, $bytes bytes"

conv=() cps=()
for i in $(seq "$REPS"); do
  # convert: restore the unconverted index, drop the previous layout
  cp "$RUN/index.unconverted.json" "$GPTOSS_HOME/index.json"
  rm -f "$GPTOSS_HOME/referrers.json"
  "$BIN/gptoss" gc --quiet >/dev/null
  sync
  t0=$(now)
  layout=$("$BIN/gptoss" convert 20b --quiet)
  sync
  t1=$(now)
  conv+=("$(secs "$t0" "$t1")")
  lbytes=$(stat -c %s "$layout")
  # cp: the same shard bytes to the same disk
  rm -rf "$RUN/cp" && mkdir -p "$RUN/cp"
  sync
  t0=$(now)
  cp "${shards[@]}" "$RUN/cp/"
  sync
  t1=$(now)
  cps+=("$(secs "$t0" "$t1")")
  rm -rf "$RUN/cp"
  say "   rep $i: convert ${conv[-1]} s, cp ${cps[-1]} s"
done
mc=$(printf '%s\n' "${conv[@]}" | median)
mp=$(printf '%s\n' "${cps[@]}" | median)
awk -v b="$bytes" -v l="$lbytes" -v c="$mc" -v p="$mp" 'BEGIN {
  printf "shards %.2f GB, layout %.2f GB\n", b / 1e9, l / 1e9
  printf "convert + sync  %7.3f s  %6.0f MB/s (median)\n", c, b / c / 1e6
  printf "cp + sync       %7.3f s  %6.0f MB/s (median)\n", p, b / p / 1e6
  printf "convert speed / cp speed = %.2fx (goal >= 0.8x)\n", p / c
}'
