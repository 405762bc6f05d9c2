#!/usr/bin/env bash
# Engine's one entry point on a fresh machine.
#   ./build.sh          install what is missing (apt, NuGet), build native/ and the .NET solution
#   ./build.sh test     the above, then every test suite; ends with "N passed, M failed"
#   ./build.sh demo     the above, then the main job (runs/demo/report.md)
# Every step checks before it acts, so running it again does only what is missing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
TOOLS="$ROOT/.tools"
CONFIG=${ENGINE_CONFIGURATION:-Release}
mkdir -p "$TOOLS"

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# NVRTC (CUDA's runtime compiler) from Debian non-free: compiles our .cu kernels to cubin/PTX without a GPU.
ensure_nvrtc() {
  # (ldconfig's output is captured first: with pipefail, `ldconfig -p | grep -q` can fail on SIGPIPE.)
  local libs; libs=$(ldconfig -p 2>/dev/null || true)
  if grep -q 'libnvrtc.so.11.2' <<<"$libs" && grep -q 'libnvrtc-builtins.so.11.8' <<<"$libs"; then return; fi
  if [ ! -f /etc/debian_version ]; then log "not Debian: install NVRTC 11.x yourself to compile CUDA kernels"; return; fi
  log "installing NVRTC (libnvrtc11.2, libnvrtc-builtins11.8) from Debian non-free"
  if ! grep -rqs 'non-free' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    as_root tee /etc/apt/sources.list.d/engine-nonfree.sources >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnvrtc11.2 libnvrtc-builtins11.8 >/dev/null
}

ensure_build_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v dotnet >/dev/null || { log "the .NET 10 SDK (dotnet) is required"; exit 1; }
}

# The aarch64 cross compiler and qemu-user (Debian, ~70 MB): ./build.sh test builds native/ for ARM and runs its
# CPU tests under qemu, the proof that the scalar-only path builds and passes on a non-x86 target.
ensure_cross_tools() {
  command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null && return
  if [ ! -f /etc/debian_version ]; then log "not Debian: the non-x86 check of native/ falls back to -DENGINE_SCALAR_ONLY=ON"; return; fi
  log "installing the aarch64 cross compiler and qemu-user (the non-x86 check of native/)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu qemu-user >/dev/null
}

# Open MPI (Debian's openmpi-bin, libopenmpi-dev: mpirun and libmpi.so.40) for data-parallel training (train --nproc N,
# mpirun -np N ./engine train); a one-process `train` never loads it.
ensure_openmpi() {
  local libs; libs=$(ldconfig -p 2>/dev/null || true)
  if command -v mpirun >/dev/null && grep -q 'libmpi.so.40' <<<"$libs"; then return; fi
  if [ ! -f /etc/debian_version ]; then log "not Debian: install Open MPI 4.x yourself for train --nproc N"; return; fi
  log "installing Open MPI (openmpi-bin, libopenmpi-dev) for data-parallel training"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
}

build_native() {
  [ -f native/CMakeLists.txt ] || return 0
  log "building native/ (CMake)"
  cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build native/build -j"$(nproc)" >/dev/null
}

# NuGet restore also brings llama.cpp: LLamaSharp.Backend.Cpu ships its libraries per CPU level (see docs/gguf-export.md).
build_dotnet() {
  log "building the .NET solution ($CONFIG)"
  dotnet build Engine.sln -c "$CONFIG" -nologo -v q -clp:ErrorsOnly
}

setup() {
  ensure_build_tools
  ensure_nvrtc
  ensure_cross_tools
  ensure_openmpi
  build_native
  build_dotnet
}

run_tests() {
  local passed=0 failed=0 skipped=0 out status=0
  local results="$ROOT/TestResults"
  rm -rf "$results"; mkdir -p "$results"

  # ctest's summary line "N% tests passed, F tests failed out of T" added to the counts.
  count_ctest() {
    local out line total nfail
    out=$(ctest "$@" --output-on-failure 2>&1) || status=1
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' | tail -1 || true)
    if [ -n "$line" ]; then
      nfail=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
      total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
      passed=$((passed + total - nfail)); failed=$((failed + nfail))
    else failed=$((failed + 1)); status=1; fi
  }

  if [ -f native/CMakeLists.txt ]; then
    log "native tests (ctest)"
    count_ctest --test-dir native/build
    # Non-x86 targets compile only the scalar kernels: a real aarch64 cross build run under qemu (the pool and CPU
    # tests; the CUDA emulation tests have no ISA-specific code and run above), else x86 compiled as a non-x86 target.
    local portable=(-DENGINE_SCALAR_ONLY=ON) portable_dir=native/build-scalar-only
    if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
      portable=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/aarch64-linux-gnu.cmake"); portable_dir=native/build-aarch64
    fi
    log "native tests, scalar-only build for a non-x86 target (${portable[*]##*/})"
    if cmake -S native -B "$portable_dir" -DCMAKE_BUILD_TYPE=Release -DENGINE_CUDA_EMULATION_TESTS=OFF "${portable[@]}" >/dev/null &&
       cmake --build "$portable_dir" -j"$(nproc)" >/dev/null; then
      count_ctest --test-dir "$portable_dir" -j"$(nproc)"
    else
      log "the scalar-only build of native/ failed"; failed=$((failed + 1)); status=1
    fi
  fi

  # The NVRTC compile check of the CUDA kernels (also an xunit test): the table of registers and spill bytes.
  # A cache fresh for each test run: every kernel is really compiled once, here, and the tests reuse it.
  export ENGINE_NVRTC_CACHE="$results/nvrtc-cache"
  log "CUDA kernels: NVRTC compile check"
  "$ROOT/engine" kernels compile || { failed=$((failed + 1)); status=1; }

  log "xunit tests"
  # Counts come from the TRX report (console summaries differ between SDK versions).
  dotnet test tests/Engine.Tests -c "$CONFIG" --no-build -nologo \
    --logger "trx;LogFileName=engine.trx" --results-directory "$results" 2>&1 | grep -vE '^\s*$' || status=1
  local trx="$results/engine.trx" counters
  counters=$(grep -o '<Counters [^>]*' "$trx" 2>/dev/null | head -1 || true)
  if [ -n "$counters" ]; then
    attr() { sed -E "s/.* $1=\"([0-9]+)\".*/\1/" <<<"$counters"; }
    passed=$((passed + $(attr passed)))
    failed=$((failed + $(attr failed) + $(attr error) + $(attr timeout) + $(attr aborted)))
    skipped=$((skipped + $(attr total) - $(attr executed)))
    grep -o '<UnitTestResult [^>]*outcome="NotExecuted"[^>]*' "$trx" | sed -E 's/.*testName="([^"]*)".*/  skipped: \1/' | head -50 || true
  else
    log "no test report was written (the test run crashed?)"
    failed=$((failed + 1))
  fi
  [ "$skipped" -gt 0 ] && log "$skipped skipped (see reasons above)"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

case "${1:-}" in
  "") setup ;;
  test) setup; run_tests ;;
  demo) setup; shift; "$ROOT/engine" demo "$@" ;;
  *) echo "usage: ./build.sh [test|demo]" >&2; exit 2 ;;
esac
