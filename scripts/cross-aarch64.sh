#!/usr/bin/env bash
# cross-aarch64.sh - build clip for aarch64-unknown-linux-gnu on an x86-64
# Debian 12 machine, run its Rust test suite under qemu user-mode emulation,
# and build and run the C example and C tests against the aarch64 libclip.
#
# Usage (from anywhere, as root or with sudo, on Debian 12 x86-64):
#   scripts/cross-aarch64.sh [--debug] [--release] [options] [-- cargo test args]
#   --debug / --release  profile(s) to build and test (default: --debug;
#                        both may be given, debug runs first)
#   --no-install         do not run apt; fail if a tool is missing
#   --no-rust-tests      skip `cargo test` (build and C checks only)
#   --no-c               skip the C part
# Environment (all optional):
#   CLIP_CROSS_TARGET_DIR  cargo target dir of the cross build
#                          (default: <repo>/target/aarch64-cross)
#   CLIP_C_INCLUDE         directory of clip.h           (default: include)
#   CLIP_C_EXAMPLE         the C example                 (default: examples/c/tag.c)
#   CLIP_C_TESTS           directory of the C test programs (default: ffi/tests/c)
#   CLIP_HOST_CARGO        cargo for the x86-64 reference build of libclip
#                          (default: `cargo` on PATH, i.e. the project's rustup toolchain)
#
# What it does:
#  1. installs, only when something is missing, from Debian's packages:
#     rustc-web, cargo-web, the arm64 Rust standard library
#     (libstd-rust-web-dev:arm64), gcc-aarch64-linux-gnu, qemu-user-static;
#     registers qemu-aarch64 with binfmt_misc when it is not (so that aarch64
#     programs that the tests spawn, such as the `clip` CLI, run too);
#  2. per profile: `cargo test --workspace --target aarch64-unknown-linux-gnu`
#     run under qemu-aarch64-static (the NEON kernel), then the SIMD-dispatch
#     test again with its report shown (which kernels run), and the parity
#     tests once more with CLIP_KERNEL=gemm (the gemm crate's path), and
#     the int8 tests with CLIP_INT8_DOT=sdot and =smull (qemu has i8mm, so
#     the other int8 kernels run only when forced);
#  3. per profile: builds libclip.so / libclip.a for aarch64 (ffi/), the C
#     example and the C test programs with aarch64-linux-gnu-gcc, runs them
#     under qemu, and compares their output with the same programs built
#     natively against an x86-64 libclip: the example must print the same tags,
#     and every embedding/probability must agree within 1e-4 (the parity
#     tests' tolerance).
# Idempotent; with the toolchain installed and the target dir warm it only
# re-runs the tests. The rustup toolchain stays the default: Debian's
# rustc/cargo are called by absolute path.
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PROFILES=() DO_INSTALL=1 DO_RUST=1 DO_C=1
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILES+=(debug); shift ;;
    --release) PROFILES+=(release); shift ;;
    --no-install) DO_INSTALL=0; shift ;;
    --no-rust-tests) DO_RUST=0; shift ;;
    --no-c) DO_C=0; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (cargo test args go after --)" >&2; exit 2 ;;
  esac
done
[ ${#PROFILES[@]} -gt 0 ] || PROFILES=(debug)
command -v python3 >/dev/null || { echo "python3 is needed (C part: test model, output comparison)" >&2; exit 1; }
TEST_ARGS=("$@")

now() { date +%s; }
step() { printf '\n==> [aarch64] %s\n' "$*"; }
T_START=$(now)
TIMINGS=()
timing() { TIMINGS+=("$1: $2s"); echo "== $1: $2s"; }

# ------------------------------------------------------------------ install
step "toolchain"
T0=$(now)
APT_PKGS=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
          libc6-dev-arm64-cross qemu-user-static)
have_all() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustdoc ] &&
  [[ "$(/usr/bin/rustc -vV 2>/dev/null)" == *"host: x86_64"* ]] &&
  ls /usr/lib/rustlib/$TARGET/lib/libstd-*.rlib >/dev/null 2>&1 &&
  command -v aarch64-linux-gnu-gcc >/dev/null &&
  command -v qemu-aarch64-static >/dev/null &&
  [ -e /lib/ld-linux-aarch64.so.1 ]
}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! have_all; then
  [ "$DO_INSTALL" = 1 ] || { echo "aarch64 toolchain missing and --no-install given" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  [[ " $(dpkg --print-foreign-architectures | tr '\n' ' ') " == *" arm64 "* ]] ||
    $SUDO dpkg --add-architecture arm64
  # A third-party apt source that fails must not stop us; a missing package will.
  $SUDO apt-get update -q || echo "WARNING: apt-get update reported errors; trying the install anyway" >&2
  $SUDO apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}"
  have_all || { echo "aarch64 toolchain still incomplete after apt-get install" >&2; exit 1; }
fi
/usr/bin/rustc -V; /usr/bin/cargo -V; qemu-aarch64-static --version | head -n1
# image 0.25.10 (Cargo.lock) declares rust-version 1.88. bookworm-security
# ships rustc-web 1.96; plain bookworm has 1.85, too old for our lockfile.
RUSTC_MINOR=$(/usr/bin/rustc -V | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "$RUSTC_MINOR" -lt 88 ]; then
  echo "Debian's rustc is 1.$RUSTC_MINOR; the locked dependencies need >= 1.88" >&2
  echo "(rustc-web from bookworm-security is 1.96: enable that apt source)" >&2
  exit 1
fi

# binfmt_misc: lets the kernel run aarch64 executables through qemu, so that
# processes spawned by tests (the `clip` binary, C programs) run as well. The
# package's postinst registers it only where systemd-binfmt runs.
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e $BINFMT/qemu-aarch64 ]; then
  [ -e $BINFMT/register ] || $SUDO mount -t binfmt_misc binfmt_misc $BINFMT || true
  CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
  if [ -e $BINFMT/register ] && [ -f $CONF ]; then
    grep -v '^#' $CONF | $SUDO tee $BINFMT/register >/dev/null || true
  fi
fi
if [ "$(head -n1 $BINFMT/qemu-aarch64 2>/dev/null)" = enabled ]; then
  echo "binfmt_misc: qemu-aarch64 enabled ($(sed -n 's/^interpreter //p' $BINFMT/qemu-aarch64))"
else
  echo "WARNING: qemu-aarch64 is not registered with binfmt_misc: tests that spawn" >&2
  echo "         aarch64 programs (the clip CLI tests) will fail with 'Exec format error'" >&2
fi
timing "install/check" $(( $(now) - T0 ))

# ------------------------------------------------------------------ env
CARGO=/usr/bin/cargo
# Debian's cargo must use Debian's rustc (the one with the arm64 std), not
# the rustup proxies that come first on PATH.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# qemu-user lets a guest pthread_join return while its host thread is still
# exiting: the tests that count threads after a pool is freed may re-read the
# count for this long (natively they read it once).
export CLIP_TEST_THREAD_GRACE_MS=2000
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Not QEMU_LD_PREFIX=/usr/aarch64-linux-gnu (nor `-L` in the runner): the
# arm64 std package pulls in multiarch libc6:arm64, a different glibc build
# than libc6-arm64-cross; qemu would mix the cross ld.so with the multiarch
# libc.so.6 and every threaded test hangs in pthread_create.
unset QEMU_LD_PREFIX
export CARGO_TARGET_DIR="${CLIP_CROSS_TARGET_DIR:-$ROOT/target/aarch64-cross}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# gemm-f16 must not be built at opt-level 0 for aarch64 ("instruction
# requires: fullfp16", gemm#31/#46): Cargo.toml's profile.dev.package
# entries build it at 3. Refuse to start a 13-minute build that would fail.
grep -q '^\[profile\.dev\.package\.\(gemm-f16\|"\*"\)\]' Cargo.toml ||
  { echo "Cargo.toml lacks [profile.dev.package.gemm-f16] opt-level = 3" >&2; exit 1; }

HAVE_FFI=0; [ -f ffi/Cargo.toml ] && HAVE_FFI=1
# ffi/tests/c_abi.rs builds its C programs with the host's gcc and a host
# cargo build; it cannot check an aarch64 library. Its C programs are built
# and run against the aarch64 library by this script's C part instead. (If
# c_abi.rs learns to cross-build, marked by the string CLIP_FFI_CROSS in it,
# it runs with the rest of the workspace.)
RUST_TEST_SETS=()
if [ "$HAVE_FFI" = 1 ] && [ -f ffi/tests/c_abi.rs ] && ! grep -q CLIP_FFI_CROSS ffi/tests/c_abi.rs; then
  RUST_TEST_SETS+=("--workspace --exclude clip-ffi")
  RUST_TEST_SETS+=("-p clip-ffi --lib")
  for t in ffi/tests/*.rs; do
    [ "$(basename "$t" .rs)" = c_abi ] || RUST_TEST_SETS+=("-p clip-ffi --test $(basename "$t" .rs)")
  done
  echo "note: ffi/tests/c_abi.rs is host-only; its C programs are checked in the C part"
else
  RUST_TEST_SETS+=("--workspace")
fi

RC=0
fail() { echo "FAILED: $*" >&2; RC=1; }

# ------------------------------------------------------------------ C part
# Same model as ffi/tests/c_abi.rs: tiny-quickgelu with a 32-pixel
# preprocessor and a byte-level vocabulary that fits its 1000 tokens.
make_c_model() {
  python3 - "$1" "$ROOT/tests/fixtures/models/tiny-quickgelu" <<'EOF'
import json, os, shutil, sys
dst, src = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in ("config.json", "model.safetensors"):
    shutil.copy(os.path.join(src, f), os.path.join(dst, f))
json.dump({"do_resize": True, "size": {"shortest_edge": 32}, "resample": 3,
           "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
           "do_rescale": True, "rescale_factor": 0.00392156862745098,
           "do_normalize": True,
           "image_mean": [0.48145466, 0.4578275, 0.40821073],
           "image_std": [0.26862954, 0.26130258, 0.27577711]},
          open(os.path.join(dst, "preprocessor_config.json"), "w"))
bs = list(range(0x21, 0x7f)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
chars = [chr(c) for c in cs]
vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
json.dump({t: i for i, t in enumerate(vocab)}, open(os.path.join(dst, "vocab.json"), "w"))
open(os.path.join(dst, "merges.txt"), "w").write("#version: 0.2\n")
EOF
}

# compare_values A B: abi_values outputs; float lines within 1e-4, others exact.
compare_values() {
  python3 - "$1" "$2" <<'EOF'
import struct, sys
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
assert len(a) == len(b), f"{len(a)} vs {len(b)} lines"
TOL, worst, n = 1e-4, 0.0, 0
for la, lb in zip(a, b):
    ta, tb = la.split(), lb.split()
    assert ta[0] == tb[0] and len(ta) == len(tb), f"{la[:60]} / {lb[:60]}"
    hexes = len(ta) > 1 and all(len(t) == 8 and all(c in "0123456789abcdef" for c in t) for t in ta[1:])
    if not hexes:
        assert la == lb, f"x86-64: {la}\naarch64: {lb}"
        continue
    for x, y in zip(ta[1:], tb[1:]):
        fx = struct.unpack("<f", bytes.fromhex(x)[::-1])[0]
        fy = struct.unpack("<f", bytes.fromhex(y)[::-1])[0]
        d = abs(fx - fy); n += 1
        assert d <= TOL, f"{ta[0]}: {fx} vs {fy} (diff {d:.3g} > {TOL})"
        worst = max(worst, d)
print(f"abi_values: {len(a)} results, {n} floats, max |x86-64 - aarch64| = {worst:.3g} (tolerance {TOL})")
EOF
}

# compare_tags A B: tag outputs; same lines, same labels in the same order,
# probabilities within 0.0015 (printed with 3 decimals).
compare_tags() {
  python3 - "$1" "$2" <<'EOF'
import sys
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
assert len(a) == len(b) and a, f"{len(a)} vs {len(b)} lines"
for la, lb in zip(a, b):
    pa, _, ra = la.rpartition(": ")
    pb, _, rb = lb.rpartition(": ")
    assert pa == pb, (la, lb)
    ta, tb = [t.rsplit(" ", 1) for t in ra.split(", ")], [t.rsplit(" ", 1) for t in rb.split(", ")]
    assert [t[0] for t in ta] == [t[0] for t in tb], f"tags differ:\n x86-64: {la}\naarch64: {lb}"
    for x, y in zip(ta, tb):
        if len(x) == 2 and x[1].replace(".", "").isdigit():
            assert abs(float(x[1]) - float(y[1])) <= 0.0015, (la, lb)
print(f"tag: {len(a)} lines, same tags on x86-64 and aarch64")
EOF
}

c_part() {
  local profile=$1 rflag=()
  [ "$profile" = release ] && rflag=(--release)
  local inc="${CLIP_C_INCLUDE:-include}" example="${CLIP_C_EXAMPLE:-examples/c/tag.c}"
  local ctests="${CLIP_C_TESTS:-ffi/tests/c}"
  if [ "$HAVE_FFI" = 0 ] || [ ! -f "$inc/clip.h" ]; then
    echo "C part skipped: no ffi/Cargo.toml or no $inc/clip.h in this checkout"
    return 0
  fi
  local host_cargo="${CLIP_HOST_CARGO:-cargo}"
  local adir="$CARGO_TARGET_DIR/$TARGET/$profile" work="$CARGO_TARGET_DIR/c-check-$profile"
  rm -rf "$work"; mkdir -p "$work/arm/lib" "$work/x86/lib"

  step "libclip for aarch64 ($profile)"
  $CARGO build -p clip-ffi --target $TARGET "${rflag[@]}"
  readelf -h "$adir/libclip.so" | grep -q AArch64 || { fail "libclip.so is not AArch64"; return; }
  ls -l "$adir/libclip.so" "$adir/libclip.a"
  # The reference: the same C programs against an x86-64 libclip, built with
  # the project's own toolchain into the normal target dir (in CI the debug
  # one is already there from `cargo test --workspace`).
  step "libclip for x86-64 (reference)"
  (unset RUSTC RUSTDOC CARGO_TARGET_DIR; cd "$ROOT" && $host_cargo build -q -p clip-ffi)
  local xdir="$ROOT/target/debug"
  for d in arm:"$adir" x86:"$xdir"; do
    cp "${d#*:}/libclip.so" "$work/${d%%:*}/lib/libclip.so.0"
    ln -sf libclip.so.0 "$work/${d%%:*}/lib/libclip.so"
  done
  make_c_model "$work/model"
  echo "this is not a PNG file" > "$work/not_an_image.png"
  local img=tests/fixtures/images
  local images=("$img/chelsea_300x451.png" "$img/jpeg_astronaut_512.jpg" "$img/mode_rgba.png" "$img/noise_37x53.png")

  local cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -O1 -I "$inc")
  # build ARCH NAME SRC [static] [extra flags]
  build() {
    local arch=$1 name=$2 src=$3 link=$4; shift 4
    local cc=gcc libdir="$work/$arch/lib" a="$xdir/libclip.a"
    [ "$arch" = arm ] && cc=aarch64-linux-gnu-gcc && a="$adir/libclip.a"
    if [ "$link" = static ]; then
      $cc "${cflags[@]}" "$src" -o "$work/$arch/$name" "$@" "$a" -lpthread -ldl -lm -lrt -lutil -lgcc_s
    else
      $cc "${cflags[@]}" "$src" -o "$work/$arch/$name" "$@" -L "$libdir" -lclip -Wl,-rpath,"$libdir"
    fi
  }
  # Under binfmt_misc the aarch64 programs run directly; otherwise via qemu.
  run_arm() { if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then "$@"; else qemu-aarch64-static "$@"; fi; }

  step "C example and C tests on aarch64 ($profile), compared with x86-64"
  if [ -f "$example" ]; then
    for arch in x86 arm; do build $arch tag "$example" shared; done
    local targs=(--model "$work/model" --labels cat,dog,rocket --top 2 "${images[0]}" "${images[1]}" "$work/not_an_image.png")
    "$work/x86/tag" "${targs[@]}" > "$work/tag.x86.txt" || true
    run_arm "$work/arm/tag" "${targs[@]}" > "$work/tag.arm.txt" || true
    echo "--- tag (x86-64):"; cat "$work/tag.x86.txt"
    echo "--- tag (aarch64):"; cat "$work/tag.arm.txt"
    grep -q 'error CLIP_ERR_FORMAT$' "$work/tag.arm.txt" || fail "tag: no format error for the non-image"
    compare_tags "$work/tag.x86.txt" "$work/tag.arm.txt" || fail "tag output differs between x86-64 and aarch64"
  else
    echo "C example skipped: $example not found"
  fi
  if [ -d "$ctests" ]; then
    if [ -f "$ctests/header_only.c" ]; then
      aarch64-linux-gnu-gcc "${cflags[@]}" -c "$ctests/header_only.c" -o "$work/arm/header_only.o" ||
        fail "clip.h does not compile as C99 for aarch64"
    fi
    if [ -f "$ctests/abi_values.c" ]; then
      build x86 abi_values "$ctests/abi_values.c" shared
      build arm abi_values "$ctests/abi_values.c" shared
      build arm abi_values_static "$ctests/abi_values.c" static
      "$work/x86/abi_values" "$work/model" "${images[@]}" > "$work/values.x86.txt" || fail "abi_values (x86-64)"
      run_arm "$work/arm/abi_values" "$work/model" "${images[@]}" > "$work/values.arm.txt" || fail "abi_values (aarch64)"
      run_arm "$work/arm/abi_values_static" "$work/model" "${images[@]}" > "$work/values.arm-static.txt" ||
        fail "abi_values (aarch64, static)"
      compare_values "$work/values.x86.txt" "$work/values.arm.txt" || fail "abi_values: x86-64 and aarch64 disagree"
      cmp -s "$work/values.arm.txt" "$work/values.arm-static.txt" || fail "abi_values: shared and static libclip disagree"
    fi
    if [ -f "$ctests/misuse.c" ]; then
      build arm misuse "$ctests/misuse.c" shared
      build arm misuse_static "$ctests/misuse.c" static
      for m in misuse misuse_static; do
        local out
        out=$(run_arm "$work/arm/$m" "$work/model" tests/fixtures/models/tiny-quickgelu \
                "$work/not_an_image.png" "${images[0]}" 2>&1) || fail "$m (aarch64): $out"
        echo "$m (aarch64): $out"
      done
    fi
    if [ -f "$ctests/limits.c" ]; then
      # Image limits in the options: the same statuses, messages and struct
      # layout as on x86-64 (where ffi/tests/c_abi.rs checks them).
      build x86 limits "$ctests/limits.c" shared
      build arm limits "$ctests/limits.c" shared
      "$work/x86/limits" "$work/model" "${images[0]}" > "$work/limits.x86.txt" || fail "limits (x86-64)"
      run_arm "$work/arm/limits" "$work/model" "${images[0]}" > "$work/limits.arm.txt" || fail "limits (aarch64)"
      cmp -s "$work/limits.x86.txt" "$work/limits.arm.txt" || fail "limits: x86-64 and aarch64 disagree"
      echo "limits (aarch64): $(wc -l < "$work/limits.arm.txt") lines as on x86-64"
    fi
    if [ -f "$ctests/threads.c" ]; then
      build arm threads "$ctests/threads.c" shared -pthread
      local out
      out=$(run_arm "$work/arm/threads" "$work/model" "${images[@]}" 2>&1) ||
        fail "threads (aarch64): $out"
      echo "threads (aarch64): $out"
    fi
  else
    echo "C tests skipped: $ctests not found"
  fi
}

# ------------------------------------------------------------------ per profile
for profile in "${PROFILES[@]}"; do
  rflag=(); [ "$profile" = release ] && rflag=(--release)
  # The L/14- and H/14-shaped parity tests (tests/model_families.rs) run in
  # the release build; a debug build under qemu takes 4-5 minutes for them.
  skip=(); [ "$profile" = debug ] && [ ${#TEST_ARGS[@]} -eq 0 ] &&
    skip=(-- --skip l14_336_transformers --skip h14_transformers --skip h14_open_clip)
  if [ "$DO_RUST" = 1 ]; then
    T0=$(now)
    for set in "${RUST_TEST_SETS[@]}"; do
      step "cargo test $set --target $TARGET ($profile)"
      # shellcheck disable=SC2086
      $CARGO test $set --target $TARGET "${rflag[@]}" "${TEST_ARGS[@]}" "${skip[@]}" ||
        fail "cargo test $set ($profile)"
    done
    [ ${#skip[@]} -gt 0 ] && echo "note: L/14 and H/14 family parity skipped in the debug build (run in release)"
    step "SIMD dispatch report ($profile)"
    $CARGO test -q --test simd_dispatch --target $TARGET "${rflag[@]}" -- --nocapture --test-threads 1 ||
      fail "simd_dispatch ($profile)"
    # The suite above ran the detected kernel (NEON); the model-level parity
    # tests run again on the gemm crate's path.
    step "parity tests with CLIP_KERNEL=gemm ($profile)"
    CLIP_KERNEL=gemm $CARGO test -q --test model_parity --test demo_model --target $TARGET "${rflag[@]}" ||
      fail "parity with CLIP_KERNEL=gemm ($profile)"
    for dot in sdot smull; do
      step "int8 tests with CLIP_INT8_DOT=$dot ($profile)"
      CLIP_INT8_DOT=$dot $CARGO test -q --test int8_precision --test quantized --target $TARGET "${rflag[@]}" ||
        fail "int8 with CLIP_INT8_DOT=$dot ($profile)"
    done
    timing "$profile build + Rust tests under qemu" $(( $(now) - T0 ))
  fi
  if [ "$DO_C" = 1 ]; then
    T0=$(now)
    c_part "$profile"
    timing "$profile C part" $(( $(now) - T0 ))
  fi
done

step "summary"
printf '  %s\n' "${TIMINGS[@]}"
echo "  total: $(( $(now) - T_START ))s; $([ $RC = 0 ] && echo PASSED || echo FAILED)"
exit $RC
