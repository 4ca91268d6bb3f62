//! The f32 vector the kernels' generic bodies are written over (one
//! implementation per instruction set: `__m512`, `__m256`, `float32x4_t`,
//! and `f32` itself for the portable path), and [`lane_fold`] for loops
//! left to the compiler's vectoriser.
//!
//! Every method is `unsafe`: it may only run where the CPU has the
//! vector's instruction set, i.e. inside that instruction set's
//! [`Isa::run`](super::isa::Isa::run). All are `#[inline(always)]` so that
//! they are compiled there, with its target features.

/// An f32 SIMD vector of [`F32Vec::LANES`] lanes.
///
/// # Safety
/// Implementations do what each method's doc says, lane by lane; callers
/// guarantee that the CPU has the vector's instruction set.
pub(crate) unsafe trait F32Vec: Copy {
    /// Lanes of the vector.
    const LANES: usize;

    /// Every lane `v`.
    unsafe fn splat(v: f32) -> Self;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes at `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// The first `n` floats from `p` in the first lanes, zeros after (`n`
    /// of `LANES` or more loads all; nothing past `p + n` is read).
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    /// Stores the first `n` lanes at `p` (all of them when `n >= LANES`;
    /// nothing past `p + n` is written).
    unsafe fn store_first(self, p: *mut f32, n: usize);
    /// `LANES` IEEE half-precision values from `p`, widened (exactly).
    unsafe fn load_f16(p: *const u16) -> Self;
    /// `LANES` bfloat16 values from `p`, widened (exactly).
    unsafe fn load_bf16(p: *const u16) -> Self;

    /// `LANES` i32 from `p` (unaligned), converted to f32 (to nearest,
    /// ties to even).
    unsafe fn load_i32(p: *const i32) -> Self;

    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// `self - b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// `self * b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// `self * b + c`, fused where the instruction set has an FMA.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self * b + c` rounded once, on every instruction set (for results
    /// that must not depend on it; slow where the target has no FMA).
    #[inline(always)]
    unsafe fn fused_mul_add(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
    /// `c - self * b`, fused where the instruction set has an FMA.
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum (for clamping; NaN handling unspecified).
    unsafe fn max(self, b: Self) -> Self;
    /// Lane-wise minimum (for clamping; NaN handling unspecified).
    unsafe fn min(self, b: Self) -> Self;
    /// `|self|`.
    unsafe fn abs(self) -> Self;
    /// `|self|` with the sign of `sign`.
    unsafe fn with_sign_of(self, sign: Self) -> Self;
    /// The nearest integer (ties to even) of lanes within `[-2^22, 2^22]`.
    unsafe fn round(self) -> Self;
    /// `1 / self` to about 2^-22 relative or better (an estimate refined by
    /// a Newton step where the instruction set has one; exact division
    /// otherwise).
    unsafe fn recip(self) -> Self;
    /// `self * 2^n` for lanes of `n` holding integers in `[-126, 127]`
    /// (`self` and the result normal floats).
    unsafe fn scale_pow2(self, n: Self) -> Self;

    /// Transposes a block: reads `rows` (at most `LANES`) rows of `cols`
    /// (at most `LANES`) floats from `src` (row stride `src_rs`) and writes
    /// `cols` rows of `LANES` floats to `dst` (row stride `dst_rs`), row
    /// `c` of `dst` being column `c` of the block, zero from lane `rows` on.
    unsafe fn transpose_block(
        src: *const f32,
        src_rs: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        for c in 0..cols {
            for r in 0..Self::LANES {
                let v = if r < rows { *src.add(r * src_rs + c) } else { 0.0 };
                *dst.add(c * dst_rs + r) = v;
            }
        }
    }
}

/// The portable "vector": one lane, plain f32 arithmetic, written so that
/// loops over it vectorise (no calls, no saturating casts).
// SAFETY: needs nothing beyond the compilation target.
unsafe impl F32Vec for f32 {
    const LANES: usize = 1;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        *p
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        *p = self
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        if n > 0 {
            *p
        } else {
            0.0
        }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        if n > 0 {
            *p = self
        }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        half::f16::from_bits(*p).to_f32()
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        f32::from_bits(u32::from(*p) << 16)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        self - b
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        *p as f32
    }
    #[inline(always)]
    unsafe fn fused_mul_add(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
    /// Not fused: `f32::mul_add` is a libm call on targets without an FMA.
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        c - self * b
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        f32::max(self, b)
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        f32::min(self, b)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        self.copysign(sign)
    }
    /// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer
    /// (ties to even) without a float-to-int conversion, which saturates and
    /// would keep loops scalar.
    #[inline(always)]
    unsafe fn round(self) -> Self {
        const ROUND: f32 = 12_582_912.0;
        (self + ROUND) - ROUND
    }
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        1.0 / self
    }
    /// `2^n` built in the exponent bits (`n + 127` shifted into place).
    #[inline(always)]
    unsafe fn scale_pow2(self, n: Self) -> Self {
        const ROUND: f32 = 12_582_912.0;
        // `n + ROUND`'s low mantissa bits hold `n` (an integer) offset by
        // ROUND's bits: an integer without a saturating cast.
        let bits = (n + ROUND).to_bits().wrapping_sub(ROUND.to_bits());
        self * f32::from_bits(bits.wrapping_add(127) << 23)
    }
}

/// Folds `x` in `L` independent lanes (`step` per element), then merges the
/// lanes in order and the remainder (`merge`): a reduction the compiler can
/// vectorise, where a single running float accumulator cannot be reordered.
#[inline(always)]
pub(crate) fn lane_fold<A: Copy, const L: usize>(
    x: &[f32],
    init: A,
    step: impl Fn(A, f32) -> A,
    merge: impl Fn(A, A) -> A,
) -> A {
    let mut lanes = [init; L];
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = step(*l, v);
        }
    }
    merge(lanes.iter().fold(init, |a, &l| merge(a, l)), tail)
}

/// An element-wise function of vectors, for [`map_in_place`] (a trait,
/// not a closure: a closure in a generic body has no target features of
/// its own, and its intrinsics would be calls).
pub(crate) trait VecMap {
    /// The function on one vector.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set.
    unsafe fn map<V: F32Vec>(v: V) -> V;
}

/// Applies `M` to `V::LANES` elements at a time of `x`, in place (the tail
/// through [`F32Vec::load_first`] / [`F32Vec::store_first`]).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn map_in_place<V: F32Vec, M: VecMap>(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(V::LANES);
    for c in &mut chunks {
        M::map(V::load(c.as_ptr())).store(c.as_mut_ptr());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        M::map(V::load_first(rest.as_ptr(), rest.len())).store_first(rest.as_mut_ptr(), rest.len());
    }
}
