#!/usr/bin/env bash
# Pull a model from cloud object-store emulators on loopback: gptoss against
# each store's usual tools, on the same bytes, interleaved, and print the
# median wall time, throughput and each tool's time relative to gptoss.
#
#   scripts/bench-cloud.sh                   # 4 GiB, 3 repetitions
#   SIZE_GIB=1 REPS=5 scripts/bench-cloud.sh
#   SIZE_MIB=64 REPS=1 scripts/bench-cloud.sh  # smoke test
#   SUITES=s3 scripts/bench-cloud.sh         # one store only
#
# S3: versitygw (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
# serving a posix directory; gptoss pull --from s3:// against `aws s3 cp
# --recursive` (aws CLI, its defaults) and s5cmd 2.3.0 (see .ci/run for the
# build). The snapshot is seeded as files (buckets are folders) with a
# gptoss-manifest.json, so gptoss verifies every byte's sha256 as it lands;
# the other tools check nothing (aws: per-part MD5 only when the ETag is
# one). Every tool is timed until its bytes are on disk (sync).
# Disk: about 3× the snapshot in $BENCH_DIR (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-$(( ${SIZE_GIB:-4} * 1024 ))}
REPS=${REPS:-3}
CONNECTIONS=${CONNECTIONS:-32}
SUITES=${SUITES:-s3 azure}
export PATH=$PATH:$(go env GOPATH)/bin

work=${BENCH_DIR:-$(mktemp -d /tmp/bench-cloud.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "${BENCH_DIR:-}" ] && rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

echo "building gptoss…" >&2
CGO_ENABLED=0 go build -o "$work/gptoss" ./cmd/gptoss

# The snapshot: 4 shards of random bytes and a config, with the manifest a
# gptoss mirror would write. make_snapshot DIR NAME writes it into DIR.
shard_mib=$(( SIZE_MIB / 4 ))
bytes=$(( shard_mib * 4 * 1024 * 1024 ))
make_snapshot() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  for i in 1 2 3 4; do head -c "$(( shard_mib * 1024 * 1024 ))" /dev/urandom >"$dir/model-0000$i-of-00004.safetensors"; done
  echo '{"model_type":"bench"}' >"$dir/config.json"
  python3 - "$dir" "$name" <<'PY'
import hashlib, json, os, sys
d, name = sys.argv[1], sys.argv[2]
files = []
for f in sorted(os.listdir(d)):
    h = hashlib.sha256()
    with open(os.path.join(d, f), 'rb') as fh:
        for b in iter(lambda: fh.read(1 << 20), b''):
            h.update(b)
    files.append({"path": f, "size": os.path.getsize(os.path.join(d, f)), "sha256": h.hexdigest()})
json.dump({"schemaVersion": 1, "name": name, "revision": "bench-1", "format": "custom",
           "source": "bench-cloud", "files": files}, open(os.path.join(d, "gptoss-manifest.json"), "w"), indent=2)
PY
}

# time_tools SUITE TOOL… runs run_<SUITE>_<TOOL> OUTDIR for every tool, REPS
# times interleaved, then prints the suite's table.
time_tools() {
  local suite=$1; shift
  local tools=("$@")
  declare -A times=()
  for rep in $(seq "$REPS"); do
    # Rotate the order each repetition: no tool always runs first.
    local order=("${tools[@]:$(( (rep - 1) % ${#tools[@]} ))}" "${tools[@]:0:$(( (rep - 1) % ${#tools[@]} ))}")
    for tool in "${order[@]}"; do
      local out=$work/out-$suite-$tool
      rm -rf "$out"; mkdir -p "$out"
      sync
      local t0 t1 t
      t0=$(date +%s.%N)
      "run_${suite}_${tool//-/_}" "$out"
      sync
      t1=$(date +%s.%N)
      t=$(echo "$t1 - $t0" | bc)
      times[$tool]="${times[$tool]:-} $t"
      printf '%-6s %-8s rep %d: %6.2f s  %7.1f MB/s\n' "$suite" "$tool" "$rep" "$t" "$(echo "$bytes / $t / 1000000" | bc -l)" >&2
      rm -rf "$out"
    done
  done
  echo
  printf '%-6s %-8s %9s %9s %12s   (%d MiB, %d reps, median)\n' store tool seconds MB/s "× gptoss" "$(( bytes / 1048576 ))" "$REPS"
  local base=""
  for tool in "${tools[@]}"; do
    local med
    med=$(printf '%s\n' ${times[$tool]} | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
    [ -z "$base" ] && base=$med
    printf '%-6s %-8s %9.2f %9.1f %11.2fx\n' "$suite" "$tool" "$med" "$(echo "$bytes / $med / 1000000" | bc -l)" "$(echo "$med / $base" | bc -l)"
  done
}

# ── S3: versitygw ─────────────────────────────────────────────────────────
bench_s3() {
  command -v versitygw >/dev/null || { echo "bench-cloud: versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 1; }
  local port; port=$(free_port)
  mkdir -p "$work/s3/data/bench" "$work/s3/iam"
  echo "making a ${SIZE_MIB} MiB snapshot in the S3 bucket…" >&2
  make_snapshot "$work/s3/data/bench/model" bench/model
  versitygw --access bench --secret benchsecret --port "127.0.0.1:$port" --quiet posix "$work/s3/data" >"$work/s3/log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  S3_EP=http://127.0.0.1:$port
  local tools=(gptoss)
  if command -v aws >/dev/null; then tools+=(aws); else echo "bench-cloud: no aws CLI; skipping it" >&2; fi
  if command -v s5cmd >/dev/null; then tools+=(s5cmd); else echo "bench-cloud: no s5cmd (see .ci/run); skipping it" >&2; fi
  time_tools s3 "${tools[@]}"
}
run_s3_gptoss() {
  GPTOSS_HOME=$1 GPTOSS_FORCE=1 GPTOSS_MIRROR= HF_ENDPOINT=http://127.0.0.1:1 \
    "$work/gptoss" pull bench/model --from s3://bench/model --endpoint "$S3_EP" -q -c "$CONNECTIONS" --no-convert >/dev/null
}
run_s3_aws() { aws --endpoint-url "$S3_EP" s3 cp --recursive --only-show-errors s3://bench/model/ "$1" >/dev/null; }
run_s3_s5cmd() { s5cmd --endpoint-url "$S3_EP" cp 's3://bench/model/*' "$1/" >/dev/null; }

# ── Azure Blob: Azurite vs azcopy ─────────────────────────────────────────
# Azurite 3.37.0 and azcopy from .tools/npm (.ci/run installs both; azcopy
# needs libsecret-1-0). The snapshot goes up with azcopy (so no gptoss code
# is involved in seeding); gptoss pull --from az:// with a read-only SAS in
# the URL against `azcopy copy --recursive` (its defaults, auto-tuned
# concurrency) with the same SAS. gptoss checks every byte against the
# manifest's sha256; azcopy checks nothing (no Content-MD5 was stored).
bench_azure() {
  local azurite=${AZURITE_BLOB:-$PWD/.tools/npm/node_modules/.bin/azurite-blob}
  AZCOPY=${AZCOPY:-$PWD/.tools/npm/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64}
  [ -x "$azurite" ] || { echo "bench-cloud: $azurite not found: npm install --prefix .tools/npm azurite@3.37.0" >&2; exit 1; }
  [ -f "$AZCOPY" ] || { echo "bench-cloud: azcopy not found: npm install --prefix .tools/npm @azure-tools/azcopy-linux@10.32.2" >&2; exit 1; }
  chmod +x "$AZCOPY"
  local port; port=$(free_port)
  mkdir -p "$work/azure/data"
  "$azurite" --blobHost 127.0.0.1 --blobPort "$port" --location "$work/azure/data" --skipApiVersionCheck --loose \
    --disableTelemetry --silent >"$work/azure/log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  AZ_EP=http://127.0.0.1:$port/devstoreaccount1
  export AZCOPY_LOG_LOCATION=$work/azure/azcopy-logs AZCOPY_JOB_PLAN_LOCATION=$work/azure/azcopy-plans AZCOPY_DISABLE_SYSLOG=true
  export AZURE_STORAGE_BLOB_ENDPOINT=$AZ_EP AZURE_STORAGE_CONNECTION_STRING= AZURE_STORAGE_KEY= AZURE_STORAGE_SAS_TOKEN=
  local rw
  rw=$(go run ./internal/azuritetest/azsas -create "$AZ_EP" bench racwdl)
  AZ_SAS=$(go run ./internal/azuritetest/azsas bench rl)
  echo "making a ${SIZE_MIB} MiB snapshot and uploading it to Azurite with azcopy…" >&2
  make_snapshot "$work/azure/src" bench/model
  "$AZCOPY" copy "$work/azure/src/*" "$AZ_EP/bench/model?$rw" --recursive --from-to LocalBlob \
    --log-level ERROR --output-level quiet >/dev/null
  rm -rf "$work/azure/src"
  time_tools azure gptoss azcopy
}
run_azure_gptoss() {
  GPTOSS_HOME=$1 GPTOSS_FORCE=1 GPTOSS_MIRROR= HF_ENDPOINT=http://127.0.0.1:1 \
    "$work/gptoss" pull bench/model --from "az://devstoreaccount1/bench/model?$AZ_SAS" -q -c "$CONNECTIONS" --no-convert >/dev/null
}
run_azure_azcopy() {
  "$AZCOPY" copy "$AZ_EP/bench/model/*?$AZ_SAS" "$1" --recursive --from-to BlobLocal \
    --log-level ERROR --output-level quiet >/dev/null
}

for suite in $SUITES; do
  if declare -F "bench_$suite" >/dev/null; then
    "bench_$suite"
  else
    echo "bench-cloud: no $suite suite in this build; skipped" >&2
  fi
done
