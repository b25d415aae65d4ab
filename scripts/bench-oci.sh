#!/usr/bin/env bash
# Pull a model artifact from a local OCI registry: gptoss vs oras (and crane
# when installed). Starts docker-registry on loopback, pushes SIZE_GIB of
# random "weights" (4 shards + a config) as a ModelPack artifact with oras,
# then pulls it REPS times with each tool, interleaved, into fresh
# directories, and prints the median wall time and throughput.
#
#   scripts/bench-oci.sh                 # 4 GiB, 3 repetitions
#   SIZE_GIB=1 REPS=5 scripts/bench-oci.sh
#   SIZE_MIB=64 REPS=1 scripts/bench-oci.sh   # smoke test
#
# Needs: docker-registry (apt-get install docker-registry), oras
# (go install oras.land/oras/cmd/oras@v1.3.6); crane optional
# (go install github.com/google/go-containerregistry/cmd/crane@v0.22.1).
# Disk: about 3× the artifact size in $BENCH_DIR (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-$(( ${SIZE_GIB:-4} * 1024 ))}
REPS=${REPS:-3}
CONNECTIONS=${CONNECTIONS:-32}
GOBIN_DIR=$(go env GOPATH)/bin
export PATH=$PATH:$GOBIN_DIR

need() { command -v "$1" >/dev/null || { echo "bench-oci: $1 not found: $2" >&2; exit 1; }; }
need docker-registry "apt-get install -y --no-install-recommends docker-registry"
need oras "go install oras.land/oras/cmd/oras@v1.3.6"
have_crane=0; command -v crane >/dev/null && have_crane=1

work=${BENCH_DIR:-$(mktemp -d /tmp/bench-oci.XXXXXX)}
mkdir -p "$work"
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  [ -z "${BENCH_DIR:-}" ] && rm -rf "$work"
}
trap cleanup EXIT

echo "building gptoss…" >&2
CGO_ENABLED=0 go build -o "$work/gptoss" ./cmd/gptoss

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

echo "making a ${SIZE_MIB} MiB artifact…" >&2
src=$work/src
mkdir -p "$src"
shard=$(( SIZE_MIB / 4 ))
files=()
for i in 1 2 3 4; do
  f=model-0000$i-of-00004.safetensors
  head -c "$(( shard * 1024 * 1024 ))" /dev/urandom >"$src/$f"
  files+=("$f:application/vnd.cncf.model.weight.v1.raw")
done
echo '{"model_type":"bench"}' >"$src/config.json"
echo '{"descriptor":{"name":"bench"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}' >"$src/modelpack.json"
ref=127.0.0.1:$port/bench/model:v1
(cd "$src" && oras push --plain-http "$ref" --artifact-type application/vnd.cncf.model.manifest.v1+json \
  --config modelpack.json:application/vnd.cncf.model.config.v1+json \
  config.json:application/vnd.cncf.model.weight.config.v1.raw "${files[@]}" >/dev/null)
rm -rf "$src"
bytes=$(( shard * 4 * 1024 * 1024 ))

run_gptoss() {
  GPTOSS_HOME=$1 GPTOSS_FORCE=1 GPTOSS_MIRROR= HF_ENDPOINT=http://127.0.0.1:1 \
    "$work/gptoss" pull bench/model --from "oci://$ref" -q -c "$CONNECTIONS" >/dev/null
}
run_oras() { oras pull --plain-http -o "$1" "$ref" >/dev/null; }
run_crane() { crane pull --insecure --format oci "$ref" "$1" >/dev/null; }

tools=(gptoss oras)
[ "$have_crane" = 1 ] && tools+=(crane)
declare -A times
for rep in $(seq "$REPS"); do
  for tool in "${tools[@]}"; do
    out=$work/out-$tool
    rm -rf "$out"; mkdir -p "$out"
    sync
    t0=$(date +%s.%N)
    "run_$tool" "$out"
    # gptoss returns with its blobs fsynced; oras and crane leave theirs in
    # the page cache. Time until the bytes are on disk for every tool.
    sync
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc)
    times[$tool]="${times[$tool]:-} $t"
    printf '%-7s rep %d: %6.2f s  %7.1f MB/s\n' "$tool" "$rep" "$t" "$(echo "$bytes / $t / 1000000" | bc -l)" >&2
    rm -rf "$out"
  done
done

echo
printf '%-7s %10s %10s  (%d MiB, %d reps, median)\n' tool seconds MB/s "$(( bytes / 1048576 ))" "$REPS"
for tool in "${tools[@]}"; do
  med=$(printf '%s\n' ${times[$tool]} | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  printf '%-7s %10.2f %10.1f\n' "$tool" "$med" "$(echo "$bytes / $med / 1000000" | bc -l)"
done
