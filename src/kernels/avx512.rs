//! The AVX-512 micro-kernel of [`super::packed`]: a `ROWS x 32` block of
//! `C (+)= A B + bias`, with `B` a packed panel of f32, f16 or bf16.
//!
//! Each step of the depth loop loads one row of the panel (two vectors of 16,
//! widened from 16-bit when needed), broadcasts one activation per output row
//! and issues `2 * ROWS` fused multiply-adds into register accumulators.

use super::activation::consts::*;
use super::int8::TileI8;
use super::packed::{Tile, LDA, NR};
use std::arch::x86_64::*;

/// How many panel rows ahead the first tile of a slice prefetches.
const PREFETCH_ROWS: usize = 16;

/// Depth steps per group of the micro-kernel's loop (the prefetch
/// bookkeeping runs once a group).
const UNROLL: usize = 4;

/// Evaluates `$call` with the const `$R` set to the runtime tile height
/// `$rows` (1 to 12; more is 12): how the packed and int8 products pick
/// the instance of their micro-kernel for a tile.
macro_rules! with_rows {
    ($rows:expr, |$R:ident| $call:expr) => {
        with_rows!(@arms $rows, $R, $call, 1 2 3 4 5 6 7 8 9 10 11)
    };
    (@arms $rows:expr, $R:ident, $call:expr, $($n:literal)*) => {
        match $rows {
            $($n => {
                const $R: usize = $n;
                $call
            })*
            _ => {
                const $R: usize = 12;
                $call
            }
        }
    };
}
pub(crate) use with_rows;

/// A mask of the lanes below `n` (all 16 when `n >= 16`).
#[inline]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// The masks of a tile's two vectors of outputs when `n_valid` of its
/// `NR` columns are stored.
#[inline]
fn tile_masks(n_valid: usize) -> (__mmask16, __mmask16) {
    (lanes(n_valid), lanes(n_valid.saturating_sub(16)))
}

/// Panel element types (const generic parameter of [`kernel`]).
pub(crate) const DT_F32: u8 = 0;
pub(crate) const DT_F16: u8 = 1;
pub(crate) const DT_BF16: u8 = 2;

/// 16 panel elements from `p` (element index `i`), widened to f32.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load16<const DT: u8>(p: *const u8, i: usize) -> __m512 {
    match DT {
        DT_F32 => _mm512_loadu_ps(p.cast::<f32>().add(i)),
        DT_F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<u16>().add(i).cast())),
        _ => {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast::<u16>().add(i).cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }
}

/// A tile's share of the next panel slice (`lines` cache lines from
/// `next`), prefetched evenly over the tile's `steps` depth steps: about
/// one line every few steps rather than bursts of two a step, which
/// filled the core's line-fill buffers and stalled the loads of the
/// multiply-adds (a stream of misses needs only a few in flight).
///
/// `L1` false prefetches into L2 (`prefetcht1`), true into L1 as well
/// (`prefetcht0`); see [`spread_into_l1`] for which CPUs take which.
struct Spread<const L1: bool> {
    line: *const u8,
    left: usize,
    acc: usize,
    lines: usize,
    steps: usize,
}

impl<const L1: bool> Spread<L1> {
    #[inline(always)]
    fn new(next: *const u8, lines: usize, steps: usize) -> Self {
        Spread { line: next, left: lines, acc: 0, lines, steps: steps.max(1) }
    }

    /// One depth step: the lines due by now (`lines / steps` of them on
    /// average, so all are issued by the last step).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn step(&mut self) {
        self.acc += self.lines;
        while self.acc >= self.steps && self.left > 0 {
            self.acc -= self.steps;
            self.left -= 1;
            if L1 {
                _mm_prefetch::<_MM_HINT_T0>(self.line.cast());
            } else {
                _mm_prefetch::<_MM_HINT_T1>(self.line.cast());
            }
            // A hint only, possibly past the panels: no `add`, never dereferenced.
            self.line = self.line.wrapping_add(64);
        }
    }
}

/// Whether [`kernel`]'s prefetch of the next panel slice should use
/// `prefetcht0` (true on AMD) rather than `prefetcht1` (elsewhere).
///
/// Zen 4 documents `prefetcht1` as filling L2 but is reported to drop it at
/// times (the line then still in memory when the first tile reads it);
/// `prefetcht0` is honoured. In-process A/B on a 2-core AMD EPYC (Zen 4)
/// VM, B/32 shapes: images at batch 1 +2.2% [quartiles 1.003-1.042] over
/// 300 pairs (F16 +1.1%; their weights stream from memory); batch 4,
/// batch 16 and 64 captions within 0.5% (their slices are reused from
/// cache); `prefetchnta` +1.9% at batch 1, `prefetcht2` +0.7%. The int8
/// kernel likewise: batch 1 +2.5% [1.009-1.043] 300 pairs, batch 16 +1.2%,
/// 64 captions +0.5%. Intel CPUs keep `prefetcht1`, measured on a Xeon
/// (`prefetcht0` was not measured there; its 48 KiB L1 may take the next
/// slice differently).
pub(crate) fn spread_into_l1() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        let id = __cpuid(0);
        // The vendor string "AuthenticAMD" in ebx, edx, ecx.
        (id.ebx, id.edx, id.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
    })
}

/// Widens `n` (a multiple of 16) panel elements of type `DT` at `src` to
/// f32 at `dst`.
///
/// # Safety
/// The CPU has AVX-512F; `src` addresses `n` elements of type `DT` and `dst`
/// `n` f32 that nothing else accesses meanwhile.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn widen<const DT: u8>(src: *const u8, dst: *mut f32, n: usize) {
    for i in (0..n).step_by(16) {
        _mm512_storeu_ps(dst.add(i), load16::<DT>(src, i));
    }
}

/// Computes one tile over a depth of `kc`.
///
/// # Safety
/// The CPU has AVX-512F. `b` points at `kc * NR` panel elements of type `DT`;
/// `t.a` at `ROWS` rows of `kc` f32 at stride `LDA`; `t.c` at
/// `ROWS` rows of at least `t.n_valid` f32 (stride `t.ldc`) that only this
/// call accesses; `t.bias`, when not null, at `NR` f32.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel<const ROWS: usize, const DT: u8, const L1: bool>(
    kc: usize,
    b: *const u8,
    t: &Tile,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let mut a = t.a;
    let mut bi = 0;
    let es = if DT == DT_F32 { 4 } else { 2 };
    // Depth steps in groups of UNROLL: the prefetch bookkeeping runs once a
    // group, not once a step.
    let (groups, tail) = (kc / UNROLL, kc % UNROLL);
    let mut share = Spread::<L1>::new(t.next, t.next_lines, groups + usize::from(tail > 0));
    let mut step = |acc: &mut [[__m512; 2]; ROWS]| {
        if t.prefetch {
            // The panel row PREFETCH_ROWS steps ahead (one or two cache lines).
            // A hint only: it may point past the panel, so no `add` (never dereferenced).
            let ahead = b.wrapping_add((bi + PREFETCH_ROWS * NR) * es);
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64).cast());
        }
        let b0 = load16::<DT>(b, bi);
        let b1 = load16::<DT>(b, bi + 16);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(r * LDA));
            acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
        }
        a = a.add(1);
        bi += NR;
    };
    for _ in 0..groups {
        share.step();
        for _ in 0..UNROLL {
            step(&mut acc);
        }
    }
    if tail > 0 {
        share.step();
        for _ in 0..tail {
            step(&mut acc);
        }
    }
    let (m0, m1) = tile_masks(t.n_valid);
    let (bias0, bias1) = if t.bias.is_null() {
        (_mm512_setzero_ps(), _mm512_setzero_ps())
    } else {
        (_mm512_maskz_loadu_ps(m0, t.bias), _mm512_maskz_loadu_ps(m1, t.bias.add(16)))
    };
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        let mut v0 = _mm512_add_ps(acc[0], bias0);
        let mut v1 = _mm512_add_ps(acc[1], bias1);
        if t.load_c {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c.add(16)));
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c.add(16), m1, v1);
    }
}

/// The int8 micro-kernel of [`super::int8`]: `ROWS x 32` outputs from
/// `groups` groups of four depths, `u8 x i8` products summed in i32 by
/// `vpdpbusd`, then `y = s_m s_n (acc - offset_n) + b_n (+ y)`.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512 VNNI. `b` points at `groups * 4 * NR`
/// bytes of panel; `t.a` at `ROWS` rows of `groups * 4` bytes (stride
/// `t.lda`); `t.row_scale` at `ROWS` f32; `t.scale`, `t.offset` (and
/// `t.bias` unless null) at `NR` elements; `t.c` at `ROWS` rows of
/// `t.n_valid` f32 (stride `t.ldc`) that only this call accesses.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn kernel_i8<const ROWS: usize, const L1: bool>(
    groups: usize,
    b: *const u8,
    t: &TileI8,
) {
    let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
    let mut share = Spread::<L1>::new(t.next, t.next_lines, groups);
    for g in 0..groups {
        share.step();
        let b0 = _mm512_loadu_si512(b.add(g * 4 * NR).cast());
        let b1 = _mm512_loadu_si512(b.add(g * 4 * NR + 64).cast());
        for (r, acc) in acc.iter_mut().enumerate() {
            let four = t.a.add(r * t.lda + 4 * g).cast::<i32>().read_unaligned();
            let av = _mm512_set1_epi32(four);
            acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
            acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
        }
    }
    let (m0, m1) = tile_masks(t.n_valid);
    let scale = [_mm512_maskz_loadu_ps(m0, t.scale), _mm512_maskz_loadu_ps(m1, t.scale.add(16))];
    let offset =
        [_mm512_maskz_loadu_epi32(m0, t.offset), _mm512_maskz_loadu_epi32(m1, t.offset.add(16))];
    let bias = if t.bias.is_null() {
        [_mm512_setzero_ps(); 2]
    } else {
        [_mm512_maskz_loadu_ps(m0, t.bias), _mm512_maskz_loadu_ps(m1, t.bias.add(16))]
    };
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        let sa = _mm512_set1_ps(*t.row_scale.add(r));
        let mut v = [_mm512_setzero_ps(); 2];
        for h in 0..2 {
            let exact = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[h], offset[h]));
            v[h] = _mm512_fmadd_ps(_mm512_mul_ps(exact, scale[h]), sa, bias[h]);
        }
        if t.load_c {
            v[0] = _mm512_add_ps(v[0], _mm512_maskz_loadu_ps(m0, c));
            v[1] = _mm512_add_ps(v[1], _mm512_maskz_loadu_ps(m1, c.add(16)));
        }
        _mm512_mask_storeu_ps(c, m0, v[0]);
        _mm512_mask_storeu_ps(c.add(16), m1, v[1]);
    }
}

/// `e^x` on 16 lanes: [`super::activation::exp_approx`]'s reduction and
/// polynomial, with `2^n` applied by `vscalefps`.
#[target_feature(enable = "avx512f")]
#[inline]
fn exp16(x: __m512) -> __m512 {
    let c = _mm512_set1_ps;
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(88.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, c(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, c(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, c(LN2_LO), r);
    let mut p = c(EXP_POLY[0]);
    for &k in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, c(k));
    }
    let er = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, c(1.0)));
    _mm512_scalef_ps(er, n)
}

/// `1 / d` as a 14-bit estimate refined by one Newton step (relative error
/// about 2^-28 before rounding): a fraction of `vdivps`, which on 16 lanes
/// holds the multiply-add port for many cycles.
#[target_feature(enable = "avx512f")]
#[inline]
fn recip(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
}

/// Applies `f` to 16 elements at a time of `x`, in place (the tail masked).
#[target_feature(enable = "avx512f")]
#[inline]
fn map16(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` is 16 f32.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), f(_mm512_loadu_ps(c.as_ptr()))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let m = lanes(rest.len());
        // SAFETY: the mask covers the `rest.len() < 16` elements of `rest`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, rest.as_ptr());
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), m, f(v));
        }
    }
}

/// The activations of [`super::activation`] on 16 lanes, their divisions
/// done by [`recip`]: replacing `vdivps` in QuickGELU made batch-1 images
/// 2.6% faster, batches of 16 4.3% and 64 captions 4.7% (B/32 shapes,
/// in-process paired A/B on a 2-core AVX-512 VM); in the GELUs, whose
/// division is a smaller part of the work, batch-1 images gained 1.1% (erf)
/// and 0.5% (tanh).
pub(crate) mod act {
    use super::*;

    /// QuickGELU: `x / (1 + e^(-1.702 x))`, in place.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn quick_gelu(x: &mut [f32]) {
        map16(x, |v| {
            let e = exp16(_mm512_mul_ps(v, _mm512_set1_ps(-QUICK_GELU)));
            _mm512_mul_ps(v, recip(_mm512_add_ps(_mm512_set1_ps(1.0), e)))
        })
    }

    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, with
    /// [`super::super::activation`]'s Abramowitz & Stegun erf, in place.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gelu_erf(x: &mut [f32]) {
        let c = _mm512_set1_ps;
        map16(x, |v| {
            let z = _mm512_mul_ps(v, c(std::f32::consts::FRAC_1_SQRT_2));
            let a = _mm512_abs_ps(z);
            let t = recip(_mm512_fmadd_ps(c(ERF_P), a, c(1.0)));
            let mut poly = c(ERF_A[0]);
            for &k in &ERF_A[1..] {
                poly = _mm512_fmadd_ps(poly, t, c(k));
            }
            poly = _mm512_mul_ps(poly, t);
            let e = exp16(_mm512_mul_ps(_mm512_sub_ps(c(0.0), a), a));
            let erf_abs = _mm512_fnmadd_ps(poly, e, c(1.0));
            // erf is odd: the sign of z on |erf|.
            let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
            let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
            _mm512_mul_ps(_mm512_mul_ps(c(0.5), v), _mm512_add_ps(c(1.0), erf))
        })
    }

    /// The tanh GELU, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    /// with `tanh(u) = 1 - 2 / (e^(2u) + 1)`, in place.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gelu_tanh(x: &mut [f32]) {
        let c = _mm512_set1_ps;
        map16(x, |v| {
            let cube = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
            let u = _mm512_fmadd_ps(c(GELU_TANH_CUBIC), cube, v);
            let e = exp16(_mm512_mul_ps(c(2.0 * GELU_TANH_K), u));
            let t = _mm512_fnmadd_ps(c(2.0), recip(_mm512_add_ps(e, c(1.0))), c(1.0));
            _mm512_mul_ps(_mm512_mul_ps(c(0.5), v), _mm512_add_ps(c(1.0), t))
        })
    }
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
