//! AVX2 + FMA + F16C: 8-lane vectors, a `6 x 16` GEMM tile (12
//! accumulators, two panel vectors and a broadcast in the 16 registers;
//! two FMAs a cycle on Zen 2/3 and Intel client cores), attention head
//! tiles of 6 queries x 2 vectors, and int8 tiles of `6 x 16` on AVX-VNNI
//! or, without it, on AVX2's `vpmaddubsw`.

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

/// The AVX2 instruction set, with FMA and F16C (every CPU with AVX2 since
/// Haswell and Zen 1 has both).
pub(crate) struct Avx2;

// SAFETY: `detected` checks AVX2, FMA and F16C, the features every
// function here is compiled for.
unsafe impl Isa for Avx2 {
    const KERNEL: Kernel = Kernel::Avx2;
    type F32 = __m256;
    const MR: usize = 6;
    const NR: usize = 16;
    const HEAD_VECS: usize = 2;

    fn detected() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }

    #[inline(always)]
    unsafe fn run<O: SimdOp>(op: O) -> O::Output {
        run(op)
    }

    unsafe fn tile(dtype: PanelType, rows: usize, kc: usize, b: *const u8, t: &Tile) {
        dispatch_tile!(6, kernel, dtype, rows, (kc, b, t))
    }

    const INT8_DOTS: &'static [Int8Dot] = &[Int8Dot::Vnni, Int8Dot::Maddubs];

    fn int8(dot: Int8Dot) -> bool {
        static VNNI: OnceLock<bool> = OnceLock::new();
        match dot {
            Int8Dot::Vnni => {
                *VNNI.get_or_init(|| Self::detected() && is_x86_feature_detected!("avxvnni"))
            }
            Int8Dot::Maddubs => Self::detected(),
            _ => false,
        }
    }

    unsafe fn tile_i8(dot: Int8Dot, rows: usize, groups: usize, b: *const u8, t: &TileI8) {
        match (dot, spread_into_l1()) {
            (Int8Dot::Vnni, false) => with_rows!(6, rows, |R| vnni_i8::<R, false>(groups, b, t)),
            (Int8Dot::Vnni, true) => with_rows!(6, rows, |R| vnni_i8::<R, true>(groups, b, t)),
            (_, false) => with_rows!(6, rows, |R| maddubs_i8::<R, false>(groups, b, t)),
            (_, true) => with_rows!(6, rows, |R| maddubs_i8::<R, true>(groups, b, t)),
        }
    }
}

/// `op` compiled for AVX2, FMA and F16C.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<O: SimdOp>(op: O) -> O::Output {
    op.eval::<Avx2>()
}

/// The f32 micro-kernel for `ROWS` rows of `DT` panels (see
/// [`microkernel::tile`]).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; the rest as [`microkernel::tile`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel<const ROWS: usize, const DT: u8, const L1: bool>(
    kc: usize,
    b: *const u8,
    t: &Tile,
) {
    microkernel::tile::<__m256, ROWS, 2, DT, L1>(kc, b, t)
}

/// A vector of 8 i32 sums, accumulated by AVX-VNNI's `vpdpbusd` (`u8 x
/// i8`: the activation bytes `p + 128` as they are).
#[derive(Clone, Copy)]
struct AvxVnni(__m256i);

// SAFETY: each method is the AVX2 / AVX-VNNI instruction its doc
// describes; `vnni_i8` runs it only where the CPU has both.
unsafe impl DotVec for AvxVnni {
    const LANES: usize = 8;
    const UNSIGNED: bool = true;
    type Row = __m256i;

    #[inline(always)]
    unsafe fn zero() -> Self {
        AvxVnni(_mm256_setzero_si256())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        AvxVnni(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        AvxVnni(_mm256_sub_epi32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn row(four: i32) -> __m256i {
        _mm256_set1_epi32(four)
    }
    #[inline(always)]
    unsafe fn dot(self, a: __m256i, b: Self) -> Self {
        AvxVnni(_mm256_dpbusd_avx_epi32(self.0, a, b.0))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        _mm256_storeu_si256(p.cast(), self.0)
    }
}

/// A vector of 8 i32 sums, accumulated with AVX2 alone: `vpmaddubsw`
/// multiplies unsigned by signed bytes and adds pairs into i16, which
/// would saturate on the bytes `p + 128`; it is given the signed `p`'s
/// `|p|` (at most 127) and the weights with `p`'s sign (`vpsignb`), so that
/// a pair is at most `2 x 127 x 127 < 2^15`, exact; `vpmaddwd` by ones adds
/// the pairs into i32.
#[derive(Clone, Copy)]
struct Maddubs(__m256i);

// SAFETY: each method is the AVX2 instruction(s) its doc describes;
// `maddubs_i8` runs them only where the CPU has AVX2.
unsafe impl DotVec for Maddubs {
    const LANES: usize = 8;
    const UNSIGNED: bool = false;
    /// The activations `p` (signed bytes) and `|p|`.
    type Row = (__m256i, __m256i);

    #[inline(always)]
    unsafe fn zero() -> Self {
        Maddubs(_mm256_setzero_si256())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        Maddubs(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Maddubs(_mm256_sub_epi32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn row(four: i32) -> (__m256i, __m256i) {
        let p = _mm256_set1_epi32(four);
        (p, _mm256_abs_epi8(p))
    }
    #[inline(always)]
    unsafe fn dot(self, (p, abs): (__m256i, __m256i), b: Self) -> Self {
        let pairs = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(b.0, p));
        Maddubs(_mm256_add_epi32(self.0, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        _mm256_storeu_si256(p.cast(), self.0)
    }
}

/// The int8 micro-kernel on AVX-VNNI (see [`int8_microkernel::tile_i8`]).
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and AVX-VNNI; the rest as
/// [`int8_microkernel::tile_i8`].
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn vnni_i8<const ROWS: usize, const L1: bool>(groups: usize, b: *const u8, t: &TileI8) {
    int8_microkernel::tile_i8::<AvxVnni, __m256, ROWS, 16, L1>(groups, b, t)
}

/// The int8 micro-kernel on AVX2 alone ([`Maddubs`]).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; the rest as
/// [`int8_microkernel::tile_i8`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn maddubs_i8<const ROWS: usize, const L1: bool>(groups: usize, b: *const u8, t: &TileI8) {
    int8_microkernel::tile_i8::<Maddubs, __m256, ROWS, 16, L1>(groups, b, t)
}

/// Eight ones (all bits set) then eight zeros: the 8 lanes from index
/// `8 - n` are the mask of the first `n` lanes.
static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The mask of the first `n` lanes (`n` < 8).
///
/// # Safety
/// The CPU has AVX.
#[inline(always)]
unsafe fn first(n: usize) -> __m256i {
    _mm256_loadu_si256(MASKS.as_ptr().add(8 - n.min(8)).cast())
}

// SAFETY: each method is the AVX / AVX2 / FMA / F16C instruction(s) its doc
// describes.
unsafe impl F32Vec for __m256 {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self)
    }
    /// A masked load (`vmaskmovps`, which does not touch masked-off lanes)
    /// when fewer than 8 lanes are asked for.
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        if n >= 8 {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, first(n))
        }
    }
    /// A masked store when fewer than 8 lanes are asked for (slow on some
    /// AMD cores, so only then).
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        if n >= 8 {
            _mm256_storeu_ps(p, self)
        } else {
            _mm256_maskstore_ps(p, first(n), self)
        }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        _mm256_cvtepi32_ps(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        _mm256_add_ps(self, b)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        _mm256_sub_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        _mm256_mul_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        _mm256_fmadd_ps(self, b, c)
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        _mm256_fnmadd_ps(self, b, c)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        _mm256_max_ps(self, b)
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        _mm256_min_ps(self, b)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        _mm256_and_ps(self, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)))
    }
    /// `self`'s bits with `sign`'s sign bit or-ed in (`self` is not
    /// negative where the kernels use it).
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        let s = _mm256_and_ps(sign, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN)));
        _mm256_or_ps(self, s)
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
    }
    /// A 12-bit estimate (`vrcpps`, relative error at most 1.5 * 2^-12)
    /// refined by one Newton step: about 2^-23 before rounding.
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        let r = _mm256_rcp_ps(self);
        _mm256_mul_ps(r, _mm256_fnmadd_ps(self, r, _mm256_set1_ps(2.0)))
    }
    /// `2^n` built in the exponent bits (`n + 127` shifted into place).
    #[inline(always)]
    unsafe fn scale_pow2(self, n: Self) -> Self {
        let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(self, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)))
    }
    /// 8 x 8 in registers ([`transpose8`]), rows and columns masked.
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f32,
        src_rs: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, r) in r.iter_mut().enumerate().take(rows) {
            *r = Self::load_first(src.add(i * src_rs), cols);
        }
        let r = transpose8(r);
        for (c, r) in r.iter().enumerate().take(cols) {
            _mm256_storeu_ps(dst.add(c * dst_rs), *r);
        }
    }
}

/// An 8 x 8 transpose: element `c` of vector `r` goes to element `r` of
/// vector `c`. Interleaves pairs of rows (4-byte lanes), then pairs of
/// pairs (8-byte lanes), then swaps 128-bit halves.
///
/// # Safety
/// The CPU has AVX.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let mut t = [_mm256_setzero_ps(); 8];
    for g in 0..4 {
        t[2 * g] = _mm256_unpacklo_ps(r[2 * g], r[2 * g + 1]);
        t[2 * g + 1] = _mm256_unpackhi_ps(r[2 * g], r[2 * g + 1]);
    }
    // Within each 128-bit half, u[4h + m] holds column m of rows 4h..4h+4.
    let mut u = [_mm256_setzero_ps(); 8];
    for h in 0..2 {
        let b = 4 * h;
        u[b] = _mm256_shuffle_ps::<0x44>(t[b], t[b + 2]);
        u[b + 1] = _mm256_shuffle_ps::<0xee>(t[b], t[b + 2]);
        u[b + 2] = _mm256_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
        u[b + 3] = _mm256_shuffle_ps::<0xee>(t[b + 1], t[b + 3]);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for m in 0..4 {
        out[m] = _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m]);
        out[4 + m] = _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m]);
    }
    out
}
