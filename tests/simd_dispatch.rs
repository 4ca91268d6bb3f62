//! Which SIMD code the products actually run, on this machine: this
//! crate's own kernel (`clip::kernels::Kernel`, the instruction set its
//! micro-kernels, attention tiles and element-wise loops are compiled for),
//! and the `gemm` crate's f32 kernel (what the `gemm` kernel's products
//! run on).
//!
//! `gemm` picks its f32 kernel once, at the first call, from runtime CPU
//! feature detection (`gemm-common` 0.19, `init_gemm_fn`): on aarch64
//! `neon::gemm_basic` when `is_aarch64_feature_detected!("neon")`, else
//! `scalar::gemm_basic`; on x86-64 `avx512f::gemm_basic` (our `x86-v4`
//! feature), else `fma::gemm_basic`, else `scalar::gemm_basic`.
//!
//! These tests do not trust that description: they look up the symbol name
//! of the function pointer `gemm` dispatches to, in this test executable's
//! own ELF symbol table, and assert it is the kernel the CPU features call
//! for. Run with `--nocapture` to see the report (the aarch64 cross script,
//! `scripts/cross-aarch64.sh`, does).
//!
//! The timing printed by `tiny_gemm_is_correct_and_timed` is a sanity check
//! that the kernel runs and gives right answers. Under qemu user-mode
//! emulation it says nothing about the speed of real ARM hardware.

use clip::kernels::{gemm_f32, GemmDst, GemmOperand};
use std::time::Instant;

/// The CPU features that matter for the kernels, as detected at run time.
fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as d;
        vec![
            ("neon", d!("neon")),
            ("fp16", d!("fp16")),
            ("fcma", d!("fcma")),
            ("dotprod", d!("dotprod")),
            ("sve", d!("sve")),
        ]
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        vec![
            ("avx2", d!("avx2")),
            ("fma", d!("fma")),
            ("f16c", d!("f16c")),
            ("avx512f", d!("avx512f")),
        ]
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        vec![]
    }
}

/// The `gemm_basic` module `gemm` 0.19 must pick for f32 here.
fn expected_kernel() -> &'static str {
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            "neon"
        } else {
            "scalar"
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512f"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "fma"
        } else {
            "scalar"
        }
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        "scalar"
    }
}

/// A function with a known, unmangled symbol: its run-time address minus
/// its symbol value is the executable's load bias (PIE).
#[no_mangle]
#[inline(never)]
pub extern "C" fn clip_simd_dispatch_anchor() -> usize {
    std::hint::black_box(7)
}

fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize
}
fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}
fn u64_at(b: &[u8], o: usize) -> usize {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize
}

/// Function symbols (name, value, size) of a 64-bit little-endian ELF file's
/// `.symtab`; `None` if it is not such a file or has no symbol table.
fn elf_function_symbols(elf: &[u8]) -> Option<Vec<(String, usize, usize)>> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(elf, 0x28), u16_at(elf, 0x3a), u16_at(elf, 0x3c));
    let section = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum).map(section).find(|&s| u32_at(elf, s + 4) == 2)?; // SHT_SYMTAB
    let (off, size, entsize) = (u64_at(elf, symtab + 0x18), u64_at(elf, symtab + 0x20), 24);
    let strtab = section(u32_at(elf, symtab + 0x28));
    let str_off = u64_at(elf, strtab + 0x18);
    let mut out = Vec::new();
    for s in (off..off + size).step_by(entsize) {
        if elf[s + 4] & 0xf != 2 {
            continue; // not STT_FUNC
        }
        let name_start = str_off + u32_at(elf, s);
        let len = elf[name_start..].iter().position(|&c| c == 0)?;
        let name = String::from_utf8_lossy(&elf[name_start..name_start + len]).into_owned();
        out.push((name, u64_at(elf, s + 8), u64_at(elf, s + 16)));
    }
    Some(out)
}

/// The identifiers of a Rust symbol, mangled (legacy `_ZN...E` or v0 `_R...`)
/// or not, joined with `::`: enough to read `gemm_f32::gemm::f32::neon::gemm_basic`.
fn readable(sym: &str) -> String {
    // v0 crate roots carry a disambiguator, `Cs<base-62>_`: drop it.
    let mut sym = sym.to_string();
    if sym.starts_with("_R") {
        while let Some(p) = sym.find("Cs") {
            let end = sym[p + 2..].find('_').map_or(sym.len(), |e| p + 3 + e);
            sym.replace_range(p + 1..end, "");
        }
    }
    let sym = sym.as_str();
    let b = sym.as_bytes();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = sym[i..j].parse().unwrap_or(0);
            if n > 0 && j + n <= b.len() {
                let id = &sym[j..j + n];
                if id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    parts.push(id.to_string());
                    i = j + n;
                    continue;
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // Legacy mangling ends with a hash segment `h0123...`: drop it.
    if parts.last().is_some_and(|p| p.len() == 17 && p.starts_with('h')) {
        parts.pop();
    }
    if parts.is_empty() {
        sym.to_string()
    } else {
        parts.join("::")
    }
}

/// The symbol of the f32 kernel `gemm` dispatches to, read from this
/// executable's symbol table.
fn dispatched_kernel_symbol() -> String {
    // Make sure the dispatch has happened through the path the model uses.
    let (a, b) = (vec![1.0f32; 16 * 16], vec![1.0f32; 16 * 16]);
    let mut c = vec![0.0f32; 16 * 16];
    let op = |d| GemmOperand { data: d, row_stride: 16, col_stride: 1 };
    gemm_f32(
        (16, 16, 16),
        GemmDst { data: &mut c, row_stride: 16, accumulate: false },
        op(&a),
        op(&b),
        1.0,
        1,
    );
    assert_eq!(c[0], 16.0);

    let kernel = gemm_f32::gemm::f32::get_gemm_fn() as *const () as usize;
    let exe = std::env::current_exe().unwrap();
    let elf = std::fs::read(&exe).unwrap();
    let syms = elf_function_symbols(&elf)
        .unwrap_or_else(|| panic!("{}: no ELF64 symbol table (stripped?)", exe.display()));
    let anchor = syms
        .iter()
        .find(|(n, _, _)| n == "clip_simd_dispatch_anchor")
        .expect("anchor symbol in the symbol table");
    let bias = (clip_simd_dispatch_anchor as *const () as usize).wrapping_sub(anchor.1);
    let value = kernel.wrapping_sub(bias);
    let (name, _, _) = syms
        .iter()
        .find(|(_, v, s)| *v == value || (*v < value && value < v + s))
        .unwrap_or_else(|| panic!("no function symbol at {value:#x} (kernel {kernel:#x})"));
    readable(name)
}

#[test]
fn readable_symbol_names() {
    assert_eq!(
        readable("_ZN8gemm_f324gemm3f324neon10gemm_basic17h0123456789abcdefE"),
        "gemm_f32::gemm::f32::neon::gemm_basic"
    );
    assert_eq!(
        readable("_RNvNtNtNtCs1a2b3c_8gemm_f324gemm3f324neon10gemm_basic"),
        "gemm_f32::gemm::f32::neon::gemm_basic"
    );
}

#[test]
fn gemm_dispatches_to_the_simd_kernel_the_cpu_supports() {
    let features = cpu_features();
    let shown: Vec<String> = features.iter().map(|(n, on)| format!("{n}={on}")).collect();
    println!("arch: {}", std::env::consts::ARCH);
    println!("cpu features detected at run time: {}", shown.join(" "));
    #[cfg(target_arch = "aarch64")]
    assert!(
        features.contains(&("neon", true)),
        "NEON (Advanced SIMD) is mandatory on aarch64 Linux, yet not detected"
    );

    let symbol = dispatched_kernel_symbol();
    println!("gemm f32 kernel dispatched to: {symbol}");
    let want = format!("gemm_f32::gemm::f32::{}::gemm_basic", expected_kernel());
    assert!(symbol.ends_with(&want), "dispatched to {symbol}, expected {want}");
}

/// The kernel this crate runs is the one `CLIP_KERNEL` forces, else the
/// fastest this CPU's features allow: AVX-512F; AVX2 with FMA and F16C;
/// NEON on aarch64; otherwise `gemm`.
#[test]
fn crate_runs_the_kernel_the_cpu_supports() {
    use clip::kernels::Kernel;
    let features = cpu_features();
    let has = |name: &str| features.iter().any(|&(n, on)| n == name && on);
    let fastest = if has("avx512f") {
        Kernel::Avx512
    } else if has("avx2") && has("fma") && has("f16c") {
        Kernel::Avx2
    } else if has("neon") {
        Kernel::Neon
    } else {
        Kernel::Gemm
    };
    let active = clip::kernels::active_kernel().expect("CLIP_KERNEL names a kernel this CPU runs");
    let supported: Vec<&str> = Kernel::supported_all().iter().map(|k| k.name()).collect();
    println!(
        "clip kernel: {active} (fastest here: {fastest}; supported: {})",
        supported.join(", ")
    );
    assert_eq!(Kernel::detected(), fastest);
    match std::env::var("CLIP_KERNEL").ok().filter(|v| !v.is_empty() && v != "auto") {
        Some(forced) => assert_eq!(active.name(), forced.to_ascii_lowercase()),
        None => assert_eq!(active, fastest),
    }
}

#[test]
fn tiny_gemm_is_correct_and_timed() {
    let (m, n, k) = (128, 128, 128);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
    let mut want = vec![0.0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            want[r * n + c] = (0..k).map(|i| a[r * k + i] as f64 * b[i * n + c] as f64).sum();
        }
    }
    let lhs = GemmOperand { data: &a, row_stride: k, col_stride: 1 };
    let rhs = GemmOperand { data: &b, row_stride: n, col_stride: 1 };
    let mut c = vec![0.0f32; m * n];
    gemm_f32(
        (m, n, k),
        GemmDst { data: &mut c, row_stride: n, accumulate: false },
        lhs,
        rhs,
        1.0,
        1,
    ); // warm-up and dispatch
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        gemm_f32(
            (m, n, k),
            GemmDst { data: &mut c, row_stride: n, accumulate: false },
            lhs,
            rhs,
            1.0,
            1,
        );
    }
    let secs = t.elapsed().as_secs_f64() / reps as f64;
    let worst = c.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
    println!(
        "{m}x{n}x{k} f32 GEMM, 1 thread: {:.3} ms, {:.2} GFLOP/s, max abs error {worst:.2e} \
         (correctness check only; under qemu emulation this is not a speed figure)",
        secs * 1e3,
        2.0 * (m * n * k) as f64 / secs / 1e9,
    );
    // The operands are multiples of 1/32 with small products, exactly
    // representable: any correct f32 kernel gets them (nearly) exactly.
    assert!(worst <= 1e-4, "max abs error {worst}");
}
