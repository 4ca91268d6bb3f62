//! AVX-512: 16-lane vectors, a `12 x 32` GEMM tile (24 accumulators of
//! the 32 registers), attention head tiles of 6 queries x 4 vectors, and
//! the int8 micro-kernel on AVX-512 VNNI (`vpdpbusd`).

use super::int8_microkernel::{self, DotVec};
use super::microkernel::{self, dispatch_tile};
use super::spread_into_l1;
use crate::kernels::int8::tile::TileI8;
use crate::kernels::int8::Int8Dot;
use crate::kernels::isa::{Isa, Kernel, SimdOp};
use crate::kernels::packed::{with_rows, PanelType, Tile};
use crate::kernels::simd::F32Vec;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// The AVX-512 instruction set (AVX-512F; int8 also needs AVX-512 VNNI).
pub(crate) struct Avx512;

// SAFETY: `detected` checks AVX-512F, every function here is compiled for
// it (and the int8 kernel for AVX-512 VNNI, which `int8` checks).
unsafe impl Isa for Avx512 {
    const KERNEL: Kernel = Kernel::Avx512;
    type F32 = __m512;
    const MR: usize = 12;
    const NR: usize = 32;
    const HEAD_VECS: usize = 4;

    fn detected() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx512f"))
    }

    const INT8_DOTS: &'static [Int8Dot] = &[Int8Dot::Vnni];

    fn int8(dot: Int8Dot) -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        dot == Int8Dot::Vnni
            && *HAS.get_or_init(|| Self::detected() && is_x86_feature_detected!("avx512vnni"))
    }

    #[inline(always)]
    unsafe fn run<O: SimdOp>(op: O) -> O::Output {
        run(op)
    }

    unsafe fn tile(dtype: PanelType, rows: usize, kc: usize, b: *const u8, t: &Tile) {
        dispatch_tile!(12, kernel, dtype, rows, (kc, b, t))
    }

    unsafe fn tile_i8(dot: Int8Dot, rows: usize, groups: usize, b: *const u8, t: &TileI8) {
        debug_assert!(dot == Int8Dot::Vnni);
        if spread_into_l1() {
            with_rows!(12, rows, |R| kernel_i8::<R, true>(groups, b, t))
        } else {
            with_rows!(12, rows, |R| kernel_i8::<R, false>(groups, b, t))
        }
    }
}

/// `op` compiled for AVX-512F.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn run<O: SimdOp>(op: O) -> O::Output {
    op.eval::<Avx512>()
}

/// The f32 micro-kernel for `ROWS` rows of `DT` panels (see
/// [`microkernel::tile`]).
///
/// # Safety
/// The CPU has AVX-512F; the rest as [`microkernel::tile`].
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const ROWS: usize, const DT: u8, const L1: bool>(
    kc: usize,
    b: *const u8,
    t: &Tile,
) {
    microkernel::tile::<__m512, ROWS, 2, DT, L1>(kc, b, t)
}

/// A mask of the lanes below `n` (all 16 when `n >= 16`).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

// SAFETY: each method is the AVX-512F instruction(s) its doc describes.
unsafe impl F32Vec for __m512 {
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        _mm512_maskz_loadu_ps(lanes(n), p)
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        _mm512_mask_storeu_ps(p, lanes(n), self)
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        _mm512_cvtepi32_ps(_mm512_loadu_si512(p.cast()))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        _mm512_add_ps(self, b)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        _mm512_sub_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        _mm512_mul_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        _mm512_fmadd_ps(self, b, c)
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        _mm512_fnmadd_ps(self, b, c)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        _mm512_max_ps(self, b)
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        _mm512_min_ps(self, b)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        _mm512_abs_ps(self)
    }
    /// `self`'s bits with `sign`'s sign bit or-ed in (`self` is not
    /// negative where the kernels use it).
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        let s = _mm512_and_si512(_mm512_castps_si512(sign), _mm512_set1_epi32(i32::MIN));
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(self), s))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
    }
    /// A 14-bit estimate refined by one Newton step (relative error about
    /// 2^-28 before rounding).
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        let r = _mm512_rcp14_ps(self);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(self, r, _mm512_set1_ps(2.0)))
    }
    #[inline(always)]
    unsafe fn scale_pow2(self, n: Self) -> Self {
        _mm512_scalef_ps(self, n)
    }
    /// 16 x 16 in registers ([`transpose16`]), rows and columns masked.
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f32,
        src_rs: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        let m = lanes(cols);
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate().take(rows) {
            *r = _mm512_maskz_loadu_ps(m, src.add(i * src_rs));
        }
        let r = transpose16(r);
        for (c, r) in r.iter().enumerate().take(cols) {
            _mm512_storeu_ps(dst.add(c * dst_rs), *r);
        }
    }
}

/// A 16 x 16 transpose: element `c` of vector `r` goes to element `r` of
/// vector `c`. Interleaves pairs of rows (4-byte then 8-byte lanes), then
/// moves 128-bit lanes twice.
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let b = 4 * g;
        let (lo01, hi01) = (_mm512_unpacklo_ps(r[b], r[b + 1]), _mm512_unpackhi_ps(r[b], r[b + 1]));
        let (lo23, hi23) =
            (_mm512_unpacklo_ps(r[b + 2], r[b + 3]), _mm512_unpackhi_ps(r[b + 2], r[b + 3]));
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        // Within each 128-bit lane, t[b + m] holds column m of rows b..b+4.
        t[b] = ps(_mm512_unpacklo_pd(pd(lo01), pd(lo23)));
        t[b + 1] = ps(_mm512_unpackhi_pd(pd(lo01), pd(lo23)));
        t[b + 2] = ps(_mm512_unpacklo_pd(pd(hi01), pd(hi23)));
        t[b + 3] = ps(_mm512_unpackhi_pd(pd(hi01), pd(hi23)));
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for m in 0..4 {
        // Lanes 0 and 2, or 1 and 3, of the rows 0-3 and 4-7 groups, and of 8-11 and 12-15.
        let a = _mm512_shuffle_f32x4::<0x88>(t[m], t[4 + m]);
        let b = _mm512_shuffle_f32x4::<0xdd>(t[m], t[4 + m]);
        let c = _mm512_shuffle_f32x4::<0x88>(t[8 + m], t[12 + m]);
        let d = _mm512_shuffle_f32x4::<0xdd>(t[8 + m], t[12 + m]);
        // Column 4 * lane + m is lane `lane` of t[m], t[4 + m], t[8 + m], t[12 + m].
        out[m] = _mm512_shuffle_f32x4::<0x88>(a, c);
        out[8 + m] = _mm512_shuffle_f32x4::<0xdd>(a, c);
        out[4 + m] = _mm512_shuffle_f32x4::<0x88>(b, d);
        out[12 + m] = _mm512_shuffle_f32x4::<0xdd>(b, d);
    }
    out
}

/// A vector of 16 i32 sums, accumulated by AVX-512 VNNI's `vpdpbusd`
/// (`u8 x i8`: the activation bytes `p + 128` as they are).
#[derive(Clone, Copy)]
struct Vnni512(__m512i);

// SAFETY: each method is the AVX-512F / AVX-512 VNNI instruction its doc
// describes; `tile_i8` runs it only where the CPU has both.
unsafe impl DotVec for Vnni512 {
    const LANES: usize = 16;
    const UNSIGNED: bool = true;
    type Row = __m512i;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Vnni512(_mm512_setzero_si512())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        Vnni512(_mm512_loadu_si512(p.cast()))
    }
    #[inline(always)]
    unsafe fn row(four: i32) -> __m512i {
        _mm512_set1_epi32(four)
    }
    #[inline(always)]
    unsafe fn dot(self, a: __m512i, b: Self) -> Self {
        Vnni512(_mm512_dpbusd_epi32(self.0, a, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Vnni512(_mm512_sub_epi32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        _mm512_storeu_si512(p.cast(), self.0)
    }
}

/// The int8 micro-kernel on AVX-512 VNNI (see [`int8_microkernel::tile_i8`]).
///
/// # Safety
/// The CPU has AVX-512F and AVX-512 VNNI; the rest as
/// [`int8_microkernel::tile_i8`].
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn kernel_i8<const ROWS: usize, const L1: bool>(groups: usize, b: *const u8, t: &TileI8) {
    int8_microkernel::tile_i8::<Vnni512, __m512, ROWS, 32, L1>(groups, b, t)
}
