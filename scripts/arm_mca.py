#!/usr/bin/env python3
"""arm_mca.py - static throughput of the NEON GEMM inner loops under llvm-mca.

Cross-compiles the `clip` binary for aarch64-unknown-linux-gnu (release, with
Debian's cargo and rustc, as scripts/cross-aarch64.sh does), disassembles it
with llvm-objdump, and cuts out two steady-state inner loops:

  clip    the NEON micro-kernel of this crate (src/kernels/aarch64/neon.rs):
          the instance of `neon::kernel` for F32 panels and the full tile
          height, whose loop is one group of 4 depth steps;
  gemm    the `gemm` crate's largest NEON f32 micro-kernel
          (gemm_f32::microkernel::neon::f32::x4x4, 16 x 4, 4 depth steps an
          iteration), which Kernel::Gemm runs on aarch64.

A loop is a backward branch and the instructions from its target to it; the
one kept per function is the loop with the most `fmla` (for `clip`, among
the instances of `neon::kernel` without widening instructions: those of
F32 panels).

With --int8, the int8 micro-kernels of src/kernels/aarch64/neon_int8.rs
instead: `i8mm` (the loop with the most `smmla`), `sdot` (the dot-product
extension; the loop with the most `sdot` by element) and `smull` (ARMv8.0
widening multiplies: the loop with the most `smull`/`smlal`, whose
`sadalp` shares their pipes). The peak of each is measured the same way,
from 24 independent `smmla`, `sdot` by element or `smull`; an `smmla` is
32 multiply-adds, an `sdot` 16, a `smull`/`smlal` 8. All are disassembled
and analysed with -mattr=+dotprod,+i8mm, which older cores lack: their
rows for those instructions are only the model's view. Each runs through `llvm-mca -mtriple=aarch64 -mcpu=X
-iterations=1000` for X in cortex-a72, cortex-a76, neoverse-n1. Each row
names the scheduling model llvm-mca used for X (from its resources' names):
LLVM 14 and 16 schedule all three with their Cortex-A57 model.

The FMA pipes' peak of each model is measured, not assumed: a block of 24
independent `fmla` by element (the form both loops use) through the same
model gives its `fmla` per cycle. The table then shows, per CPU and loop:
fmla per iteration, Block RThroughput (the resource-bound cycles per
iteration), the simulated cycles per iteration (Total Cycles / iterations:
dependencies and dispatch included), and the share of the FMA pipes' peak
= (fmla per iteration / peak fmla per cycle) / cycles, for both cycle
figures.

Usage:
  scripts/arm_mca.py                 build, extract, analyse, print the table
  scripts/arm_mca.py --no-build      use the binary already built
  scripts/arm_mca.py --asm FILE --function NAME [--function NAME ...]
                                     analyse loops of functions in an
                                     assembly file (rustc --emit asm) instead
  --cpus A,B,...                     other -mcpu models (default: the three above)
  --mca PATH                         another llvm-mca (e.g. llvm-mca-16, whose
                                     neoverse-n2 model has two FMA pipes)
  --widening                         also the loops of F16 and BF16 panels
                                     (widened in the kernel: small batches)
  --int8                             the int8 loops (sdot, smull) instead
  --keep DIR                         write each loop's llvm-mca input there
  --verbose                          print each loop and llvm-mca's report
Environment: CLIP_CROSS_TARGET_DIR (default <repo>/target/aarch64-cross),
LLVM_MCA (default llvm-mca), LLVM_OBJDUMP (default llvm-objdump).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "aarch64-unknown-linux-gnu"
CPUS = ["cortex-a72", "cortex-a76", "neoverse-n1"]
ITERATIONS = 1000
LLVM_MCA = [os.environ.get("LLVM_MCA", "llvm-mca")]
LLVM_OBJDUMP = os.environ.get("LLVM_OBJDUMP", "llvm-objdump")
BRANCH = re.compile(r"^(b(\.\w+)?|cbn?z|tbn?z)$")
WIDENING = ("fcvtl", "shll", "ushll")
# The multiply-accumulate instructions a loop is measured by, per kind.
KEY_OPS = {
    "fmla": ("fmla",),
    "sdot": ("sdot",),
    "smmla": ("smmla",),
    "smull": ("smull", "smull2", "smlal", "smlal2"),
}
# A block of independent instructions of each kind: its peak per cycle.
PEAK_BLOCK = {
    "fmla": lambda i: f"fmla\tv{i}.4s, v30.4s, v31.s[{i % 4}]",
    "sdot": lambda i: f"sdot\tv{i}.4s, v30.16b, v31.4b[{i % 4}]",
    "smmla": lambda i: f"smmla\tv{i}.4s, v30.16b, v31.16b",
    "smull": lambda i: f"smull\tv{i}.8h, v30.8b, v31.8b",
}


def target_dir():
    return os.environ.get("CLIP_CROSS_TARGET_DIR", os.path.join(ROOT, "target", "aarch64-cross"))


def build():
    """The release `clip` binary for aarch64, as cross-aarch64.sh builds it."""
    env = dict(os.environ)
    env.update(
        RUSTC="/usr/bin/rustc",
        RUSTDOC="/usr/bin/rustdoc",
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="aarch64-linux-gnu-gcc",
        CC_aarch64_unknown_linux_gnu="aarch64-linux-gnu-gcc",
        AR_aarch64_unknown_linux_gnu="aarch64-linux-gnu-ar",
        CARGO_TARGET_DIR=target_dir(),
    )
    for var in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"):
        env.pop(var, None)
    cmd = ["/usr/bin/cargo", "build", "--release", "--target", TARGET, "--bin", "clip"]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return os.path.join(target_dir(), TARGET, "release", "clip")


def functions_from_objdump(binary):
    """{demangled name: [[(address, instruction text)]]} (a name may have
    several instances: generic functions differ only by their hash), and
    the number of calls to `core::core_arch` functions (intrinsics left out
    of line)."""
    out = subprocess.run(
        [LLVM_OBJDUMP, "-d", "-C", "--no-show-raw-insn", "--mattr=+dotprod,+i8mm", binary],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    funcs = {}
    calls = len(re.findall(r"\bbl\s.*core_arch", out))
    current = None
    head = re.compile(r"^[0-9a-f]+ <(.*)>:$")
    line_re = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
    for line in out.splitlines():
        m = head.match(line)
        if m:
            name = re.sub(r"::h[0-9a-f]{16}$", "", m.group(1))
            current = []
            funcs.setdefault(name, []).append(current)
            continue
        m = line_re.match(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(2).split("//")[0].strip()))
    return funcs, calls


def loops_objdump(body):
    """(start, end) index pairs of the loops of a function: a branch to an
    address at or before it, within the function."""
    index = {addr: i for i, (addr, _) in enumerate(body)}
    loops = []
    for i, (addr, ins) in enumerate(body):
        parts = ins.split(None, 1)
        if not parts or not BRANCH.match(parts[0]) or len(parts) < 2:
            continue
        m = re.search(r"(?:0x)?([0-9a-f]+) <", parts[1])
        if not m:
            continue
        target = int(m.group(1), 16)
        if target <= addr and target in index:
            loops.append((index[target], i))
    return loops


def functions_from_asm(path, names):
    """{name: [[(label or None, instruction text)]]} for the named functions
    of an assembly file (rustc --emit asm)."""
    lines = open(path).read().splitlines()
    funcs = {}
    for name in names:
        try:
            start = next(i for i, l in enumerate(lines) if l.startswith(name + ":"))
        except StopIteration:
            sys.exit(f"{path}: no function {name}")
        body = []
        for l in lines[start + 1 :]:
            if l.startswith(".Lfunc_end") or (l and not l[0].isspace() and not l.startswith(".L")):
                break
            s = l.split("//")[0].strip()
            if not s:
                continue
            if s.endswith(":"):
                body.append((s[:-1], None))
            elif not s.startswith("."):
                body.append((None, s))
        funcs[name] = [body]
    return funcs


def loops_asm(body):
    labels = {lab: i for i, (lab, ins) in enumerate(body) if lab}
    loops = []
    for i, (lab, ins) in enumerate(body):
        if not ins:
            continue
        parts = ins.split(None, 1)
        if BRANCH.match(parts[0]) and len(parts) > 1:
            target = parts[1].split(",")[-1].strip()
            if target in labels and labels[target] < i:
                loops.append((labels[target], i))
    return loops


def best_loop(instances, loops_of, text_of, exclude=(), require=(), key=KEY_OPS["fmla"]):
    """The loop with the most `key` ops over every instance (ties: the first),
    skipping loops that contain any of `exclude` or none of `require`, as
    instruction texts with the closing branch retargeted to a local
    label."""
    best = None
    for body in instances:
        for s, e in loops_of(body):
            ins = [t for t in (text_of(x) for x in body[s : e + 1]) if t]
            ops = {i.split()[0] for i in ins}
            if ops & set(exclude) or (require and not ops & set(require)):
                continue
            n = sum(1 for i in ins if i.split()[0] in key)
            if best is None or n > best[0]:
                best = (n, ins)
    if best is None:
        return None
    ins = best[1]
    op = ins[-1].split(None, 1)
    args = op[1].split(",")
    args[-1] = " 1b"
    ins[-1] = op[0] + "\t" + ",".join(args).strip()
    return ins


def mca(cpu, instructions, keep=None, name=None):
    """llvm-mca's report for the loop on `cpu`."""
    src = "1:\n" + "".join(f"\t{i}\n" for i in instructions)
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write(src)
        path = f.name
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, f"{name}.s"), "w") as f:
            f.write(src)
    try:
        r = subprocess.run(
            [
                LLVM_MCA[0],
                "-mtriple=aarch64",
                f"-mcpu={cpu}",
                "-mattr=+dotprod,+i8mm",
                f"-iterations={ITERATIONS}",
                path,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(path)
    return r.stdout


def figure(report, label):
    m = re.search(rf"^{label}:\s+([0-9.]+)", report, re.M)
    return float(m.group(1))


def fma_peak(cpu, keep=None, kind="fmla"):
    """`kind` instructions (fmla by element, sdot by element, smull) per
    cycle on `cpu`'s model (24 independent ones), and the model's name (the
    prefix of its resources' names: the same model may serve several -mcpu
    values)."""
    block = [PEAK_BLOCK[kind](i) for i in range(24)]
    rep = mca(cpu, block, keep, f"peak-{kind}-{cpu}")
    m = re.search(r"^\[[0-9.]+\]\s+- (\w+?)Unit", rep, re.M)
    return 24 / figure(rep, "Block RThroughput"), m.group(1) if m else "?", rep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--asm")
    ap.add_argument("--function", action="append", default=[])
    ap.add_argument("--cpus", default=",".join(CPUS))
    ap.add_argument("--mca")
    ap.add_argument("--widening", action="store_true")
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--keep")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.mca:
        LLVM_MCA[0] = args.mca
    version = subprocess.run([LLVM_MCA[0], "--version"], capture_output=True, text=True).stdout
    version = re.search(r"LLVM version ([0-9.]+)", version)
    print(f"llvm-mca: {LLVM_MCA[0]} (LLVM {version.group(1) if version else '?'})")

    if args.asm:
        funcs = functions_from_asm(args.asm, args.function)
        kernels = [
            (name, "fmla", best_loop(funcs[name], loops_asm, lambda x: x[1]))
            for name in args.function
        ]
    else:
        binary = os.path.join(target_dir(), TARGET, "release", "clip") if args.no_build else build()
        funcs, calls = functions_from_objdump(binary)
        print(f"{binary}: {calls} calls to core::core_arch functions (0: every intrinsic inlined)")
        ours = [n for n in funcs if n.startswith("clip::kernels::aarch64::neon::kernel")]
        theirs = [n for n in funcs if n.startswith("gemm_f32::microkernel::neon::f32::x4x4")]
        if not ours or not theirs:
            sys.exit(f"not found in {binary}: clip's neon::kernel ({ours}) or gemm's x4x4 ({theirs})")
        int8 = {
            kind: [
                b
                for n in funcs
                if n.startswith(f"clip::kernels::aarch64::neon_int8::{kind}")
                for b in funcs[n]
            ]
            for kind in ("i8mm", "sdot", "smull")
        }
        kernels = [
            (
                "clip",
                "fmla",
                best_loop(
                    [b for n in ours for b in funcs[n]],
                    loops_objdump,
                    lambda x: x[1],
                    exclude=WIDENING,
                ),
            ),
            ("gemm", "fmla", best_loop(funcs[theirs[0]], loops_objdump, lambda x: x[1])),
        ]
        if args.int8:
            # (function, instruction kind)
            int8_loops = [("i8mm", "smmla"), ("sdot", "sdot"), ("smull", "smull")]
            kernels = [
                (
                    f"clip int8 {fn}",
                    kind,
                    best_loop(int8[fn], loops_objdump, lambda x: x[1], key=KEY_OPS[kind]),
                )
                for fn, kind in int8_loops
            ]
        if args.widening:
            mine = [b for n in ours for b in funcs[n]]
            kernels += [
                (
                    "clip f16",
                    "fmla",
                    best_loop(mine, loops_objdump, lambda x: x[1], require=["fcvtl"]),
                ),
                (
                    "clip bf16",
                    "fmla",
                    best_loop(
                        mine,
                        loops_objdump,
                        lambda x: x[1],
                        exclude=["fcvtl"],
                        require=["shll", "ushll", "shll2", "ushll2"],
                    ),
                ),
            ]
    for name, kind, ins in kernels:
        if not ins:
            sys.exit(f"{name}: no loop with {kind} found")
        if args.verbose:
            print(f"--- {name}: {len(ins)} instructions")
            print("\n".join("\t" + i for i in ins))

    rows = []
    for cpu in args.cpus.split(","):
        peaks = {}
        for name, kind, ins in kernels:
            if kind not in peaks:
                peaks[kind] = fma_peak(cpu, args.keep, kind)
                if args.verbose:
                    print(f"--- {kind} peak on {cpu}\n{peaks[kind][2]}")
            peak, model, _ = peaks[kind]
            rep = mca(cpu, ins, args.keep, f"{name.replace(' ', '-')}-{cpu}")
            if args.verbose:
                print(f"--- {name} on {cpu}\n{rep}")
            ops = sum(1 for i in ins if i.split()[0] in KEY_OPS[kind])
            rthr = figure(rep, "Block RThroughput")
            sim = figure(rep, "Total Cycles") / ITERATIONS
            rows.append((f"{cpu} ({model})", kind, peak, name, len(ins), ops, rthr, sim))

    print(
        "| -mcpu (scheduling model) | op | op/cycle (model) | loop | instructions | op/iter "
        "| Block RThroughput | simulated cycles/iter | peak share (RThroughput) "
        "| peak share (simulated) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cpu, kind, peak, name, n, ops, rthr, sim in rows:
        print(
            f"| {cpu} | {kind} | {peak:.2f} | {name} | {n} | {ops} | {rthr:.2f} | {sim:.2f} "
            f"| {100 * ops / peak / rthr:.1f}% | {100 * ops / peak / sim:.1f}% |"
        )


if __name__ == "__main__":
    main()
