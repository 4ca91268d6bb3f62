//! The x86-64 instruction sets: [`Avx512`] (AVX-512F, int8 with AVX-512
//! VNNI) and [`Avx2`] (AVX2 + FMA + F16C, int8 with AVX-VNNI or AVX2
//! alone), which share one GEMM micro-kernel body ([`microkernel`]) and
//! one int8 micro-kernel body (`int8_microkernel`) over their vectors.

mod avx2;
mod avx512;
mod int8_microkernel;
pub(crate) mod microkernel;

pub(crate) use avx2::Avx2;
pub(crate) use avx512::Avx512;

/// Whether the micro-kernels' prefetch of the next panel slice should use
/// `prefetcht0` (true on AMD) rather than `prefetcht1` (elsewhere).
///
/// Zen 4 documents `prefetcht1` as filling L2 but is reported to drop it at
/// times (the line then still in memory when the first tile reads it);
/// `prefetcht0` is honoured. Intel CPUs keep `prefetcht1`. The A/B
/// measurements behind this choice are in
/// `benches/results/2026-11-30-session9-amd.md`.
pub(crate) fn spread_into_l1() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        let id = std::arch::x86_64::__cpuid(0);
        // The vendor string "AuthenticAMD" in ebx, edx, ecx.
        (id.ebx, id.edx, id.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
    })
}

#[cfg(test)]
mod tests {
    /// The vendor read by `cpuid` is the one Linux reports.
    #[test]
    #[cfg(target_os = "linux")]
    fn spread_hint_follows_the_cpu_vendor() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let vendor = cpuinfo.lines().find(|l| l.starts_with("vendor_id")).unwrap();
        assert_eq!(super::spread_into_l1(), vendor.ends_with("AuthenticAMD"), "{vendor}");
    }
}
