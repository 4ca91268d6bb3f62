//! NEON (Advanced SIMD): 4-lane vectors, an `8 x 8` GEMM tile (16
//! accumulators, 8 registers of activations and the panel's vectors in the
//! 32), attention head tiles of 6 queries x 4 vectors.
//!
//! The micro-kernel reads the packed activations row-major: one load brings
//! 4 consecutive depths of a row into a register, and a multiply-add by
//! element (`fmla v.4s, v.4s, v.s[l]`) uses depth `l` of it, so the
//! activations need no broadcasts and an 8-row tile loads 8 of them per 4
//! depth steps. The panel comes as f32, f16 (widened by `fcvtl`) or bf16
//! (a shift). The int8 micro-kernels are in `neon_int8`.

use super::neon_int8;
use crate::kernels::int8::tile::TileI8;
use crate::kernels::int8::Int8Dot;
use crate::kernels::isa::{Isa, Kernel, SimdOp};
use crate::kernels::packed::{
    finish_tile, load_panel, with_rows, PanelType, Tile, DT_BF16, DT_F16, DT_F32, LDA,
};
use crate::kernels::simd::F32Vec;
use std::arch::aarch64::*;
use std::arch::asm;
use std::sync::OnceLock;

/// The NEON instruction set (in every aarch64 CPU that runs Linux).
pub(crate) struct Neon;

/// Rows of the micro-kernel's tile.
const MR: usize = 8;
/// Vectors of columns of the micro-kernel's tile (`NR = 4 VECS`).
const VECS: usize = 2;

// SAFETY: `detected` checks NEON, the only feature any function here is
// compiled for.
unsafe impl Isa for Neon {
    const KERNEL: Kernel = Kernel::Neon;
    type F32 = float32x4_t;
    const MR: usize = MR;
    const NR: usize = 4 * VECS;
    const HEAD_VECS: usize = 4;

    fn detected() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_aarch64_feature_detected!("neon"))
    }

    #[inline(always)]
    unsafe fn run<O: SimdOp>(op: O) -> O::Output {
        run(op)
    }

    unsafe fn tile(dtype: PanelType, rows: usize, kc: usize, b: *const u8, t: &Tile) {
        match dtype {
            PanelType::F32 => with_rows!(8, rows, |R| kernel::<R, DT_F32>(kc, b, t)),
            PanelType::F16 => with_rows!(8, rows, |R| kernel::<R, DT_F16>(kc, b, t)),
            PanelType::BF16 => with_rows!(8, rows, |R| kernel::<R, DT_BF16>(kc, b, t)),
        }
    }

    const INT8_DOTS: &'static [Int8Dot] = &[Int8Dot::I8mm, Int8Dot::Sdot, Int8Dot::Smull];
    const NR_I8: usize = neon_int8::NR;

    fn int8(dot: Int8Dot) -> bool {
        static SDOT: OnceLock<bool> = OnceLock::new();
        static I8MM: OnceLock<bool> = OnceLock::new();
        match dot {
            Int8Dot::I8mm => *I8MM.get_or_init(|| {
                Self::detected() && std::arch::is_aarch64_feature_detected!("i8mm")
            }),
            Int8Dot::Sdot => *SDOT.get_or_init(|| {
                Self::detected() && std::arch::is_aarch64_feature_detected!("dotprod")
            }),
            Int8Dot::Smull => Self::detected(),
            _ => false,
        }
    }

    unsafe fn tile_i8(dot: Int8Dot, rows: usize, groups: usize, b: *const u8, t: &TileI8) {
        use neon_int8::i8mm;
        match (dot, rows) {
            (Int8Dot::Sdot, _) => {
                return with_rows!(8, rows, |R| neon_int8::sdot::<R>(groups, b, t))
            }
            (Int8Dot::I8mm, 1) => return i8mm::<1, 1>(groups, b, t),
            (Int8Dot::I8mm, 2) => return i8mm::<2, 1>(groups, b, t),
            (Int8Dot::I8mm, 3) => return i8mm::<3, 2>(groups, b, t),
            (Int8Dot::I8mm, 4) => return i8mm::<4, 2>(groups, b, t),
            (Int8Dot::I8mm, 5) => return i8mm::<5, 3>(groups, b, t),
            (Int8Dot::I8mm, 6) => return i8mm::<6, 3>(groups, b, t),
            (Int8Dot::I8mm, 7) => return i8mm::<7, 4>(groups, b, t),
            (Int8Dot::I8mm, _) => return i8mm::<8, 4>(groups, b, t),
            _ => {}
        }
        // Passes of at most 4 rows (each row takes 4 accumulators).
        for r0 in (0..rows).step_by(neon_int8::SMULL_ROWS) {
            let part = TileI8 {
                a: t.a.add(r0 * t.lda),
                row_scale: t.row_scale.add(r0),
                c: t.c.add(r0 * t.ldc),
                ..*t
            };
            match rows - r0 {
                1 => neon_int8::smull::<1>(groups, b, &part),
                2 => neon_int8::smull::<2>(groups, b, &part),
                3 => neon_int8::smull::<3>(groups, b, &part),
                _ => neon_int8::smull::<4>(groups, b, &part),
            }
        }
    }
}

/// `op` compiled for NEON.
///
/// # Safety
/// The CPU has NEON.
#[target_feature(enable = "neon")]
unsafe fn run<O: SimdOp>(op: O) -> O::Output {
    op.eval::<Neon>()
}

// `with_rows!(8, ...)` picks the instance: the tile's height is MR.
const _: () = assert!(MR == 8);

/// The micro-kernel for `ROWS` rows of `DT` panels (see [`tile`]); kept
/// out of line, one instance per height and panel type.
///
/// # Safety
/// The CPU has NEON; the rest as [`tile`].
#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn kernel<const ROWS: usize, const DT: u8>(kc: usize, b: *const u8, t: &Tile) {
    tile::<ROWS, VECS, DT>(kc, b, t)
}

/// Panel row `i` (its first element's index) as `V` vectors of f32: loaded,
/// or widened from f16 (`fcvtl`, `fcvtl2`: exact) or bf16 (a shift), two
/// vectors from one load where the row has an even number of them.
///
/// # Safety
/// The CPU has NEON; `b` addresses `i + 4 V` elements of type `DT`.
#[inline(always)]
unsafe fn panel_row<const V: usize, const DT: u8>(b: *const u8, i: usize) -> [float32x4_t; V] {
    let mut out = [vdupq_n_f32(0.0); V];
    if DT == DT_F32 {
        for (z, o) in out.iter_mut().enumerate() {
            *o = vld1q_f32(b.cast::<f32>().add(i + 4 * z));
        }
        return out;
    }
    let p = b.cast::<u16>().add(i);
    for z in (0..V).step_by(2) {
        if z + 1 < V {
            let h = vld1q_u16(p.add(4 * z));
            (out[z], out[z + 1]) = if DT == DT_F16 { widen_f16x8(h) } else { widen_bf16x8(h) };
        } else {
            out[z] = load_panel::<float32x4_t, DT>(b, i + 4 * z);
        }
    }
    out
}

/// Eight IEEE halves widened to f32 (exactly): lanes 0-3, 4-7.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn widen_f16x8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: `fcvtl` / `fcvtl2` (half to single precision, part of the
    // base Advanced SIMD and floating-point instruction set) read and write
    // only these registers.
    asm!(
        "fcvtl {lo:v}.4s, {h:v}.4h",
        "fcvtl2 {hi:v}.4s, {h:v}.8h",
        h = in(vreg) h,
        lo = out(vreg) lo,
        hi = out(vreg) hi,
        options(pure, nomem, nostack, preserves_flags),
    );
    (lo, hi)
}

/// Eight bfloat16 widened to f32 (exactly: the bits shifted to the top of
/// each lane): lanes 0-3, 4-7.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn widen_bf16x8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let lo = vshll_n_u16::<16>(vget_low_u16(h));
    let hi = vshll_high_n_u16::<16>(h);
    (vreinterpretq_f32_u32(lo), vreinterpretq_f32_u32(hi))
}

/// `acc[r][z] += b[z] * a[r][L]`: one depth step of a tile, depth `L` of
/// the 4 in each row's register of activations.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn fma_lane<const L: i32, const ROWS: usize, const V: usize>(
    acc: &mut [[float32x4_t; V]; ROWS],
    a: &[float32x4_t; ROWS],
    b: &[float32x4_t; V],
) {
    for (acc, a) in acc.iter_mut().zip(a) {
        for (acc, b) in acc.iter_mut().zip(b) {
            *acc = vfmaq_laneq_f32::<L>(*acc, *b, *a);
        }
    }
}

/// Computes one tile over a depth of `kc`: `ROWS` rows times `V` vectors
/// of columns (the panel width, `NR = 4 V`), `C (+)= A B + bias` as
/// [`Tile`] describes. Depths go 4 at a time (one load of activations per
/// row, then 4 steps of multiply-adds by element), the last `kc % 4` one at
/// a time with the activation broadcast.
///
/// The tile's prefetch hints (`prefetch`, `next`, `next_lines`) are not
/// used: the panel is read sequentially, which the hardware prefetchers of
/// aarch64 cores follow.
///
/// # Safety
/// The CPU has NEON. `b` points at `kc * 4 V` panel elements of type `DT`;
/// `t.a` at `ROWS` rows of `kc` f32 at stride `LDA`; `t.c` at `ROWS` rows of
/// at least `t.n_valid` f32 (stride `t.ldc`) that only this call accesses;
/// `t.bias`, when not null, at `t.n_valid` f32 or more.
#[inline(always)]
unsafe fn tile<const ROWS: usize, const V: usize, const DT: u8>(kc: usize, b: *const u8, t: &Tile) {
    // The hints, unused (see above).
    let _ = (t.prefetch, t.next, t.next_lines);
    let nr = 4 * V;
    let mut acc = [[vdupq_n_f32(0.0); V]; ROWS];
    let (mut a, mut bi) = (t.a, 0);
    for _ in 0..kc / 4 {
        let mut av = [vdupq_n_f32(0.0); ROWS];
        for (r, av) in av.iter_mut().enumerate() {
            *av = vld1q_f32(a.add(r * LDA));
        }
        fma_lane::<0, ROWS, V>(&mut acc, &av, &panel_row::<V, DT>(b, bi));
        fma_lane::<1, ROWS, V>(&mut acc, &av, &panel_row::<V, DT>(b, bi + nr));
        fma_lane::<2, ROWS, V>(&mut acc, &av, &panel_row::<V, DT>(b, bi + 2 * nr));
        fma_lane::<3, ROWS, V>(&mut acc, &av, &panel_row::<V, DT>(b, bi + 3 * nr));
        a = a.add(4);
        bi += 4 * nr;
    }
    for _ in 0..kc % 4 {
        let bv = panel_row::<V, DT>(b, bi);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = vld1q_dup_f32(a.add(r * LDA));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = vfmaq_f32(*acc, *bv, av);
            }
        }
        a = a.add(1);
        bi += nr;
    }
    finish_tile::<float32x4_t, ROWS, V>(&acc, t)
}

// SAFETY: each method is the NEON instruction(s) its doc describes.
unsafe impl F32Vec for float32x4_t {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        vdupq_n_f32(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        vld1q_f32(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        vst1q_f32(p, self)
    }
    /// Fewer than 4 lanes go through a zeroed stack array.
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        if n >= 4 {
            vld1q_f32(p)
        } else {
            let mut v = [0.0f32; 4];
            std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n);
            vld1q_f32(v.as_ptr())
        }
    }
    /// Fewer than 4 lanes go through a stack array.
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        if n >= 4 {
            vst1q_f32(p, self)
        } else {
            let mut v = [0.0f32; 4];
            vst1q_f32(v.as_mut_ptr(), self);
            std::ptr::copy_nonoverlapping(v.as_ptr(), p, n);
        }
    }
    /// `fcvtl` (exact).
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        let h = vld1_u16(p);
        let out: float32x4_t;
        // SAFETY: `fcvtl` (half to single precision, base Advanced SIMD)
        // reads and writes only these registers.
        asm!(
            "fcvtl {o:v}.4s, {h:v}.4h",
            h = in(vreg) h,
            o = out(vreg) out,
            options(pure, nomem, nostack, preserves_flags),
        );
        out
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p)))
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        vcvtq_f32_s32(vld1q_s32(p))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        vaddq_f32(self, b)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        vsubq_f32(self, b)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        vmulq_f32(self, b)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        vfmaq_f32(c, self, b)
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        vfmsq_f32(c, self, b)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        vmaxq_f32(self, b)
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        vminq_f32(self, b)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        vabsq_f32(self)
    }
    /// `self`'s bits but the sign bit, which is `sign`'s (a bit select:
    /// a true copysign, whatever the sign of `self`).
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        vbslq_f32(vdupq_n_u32(0x8000_0000), sign, self)
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        vrndnq_f32(self)
    }
    /// An 8-bit estimate (`frecpe`, relative error below 2^-8) refined by
    /// two Newton steps (`frecps`): below 2^-16, then about 2^-23, the
    /// rounding of the last multiplication.
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        let r = vrecpeq_f32(self);
        let r = vmulq_f32(r, vrecpsq_f32(self, r));
        vmulq_f32(r, vrecpsq_f32(self, r))
    }
    /// `2^n` built in the exponent bits (`n + 127` shifted into place).
    #[inline(always)]
    unsafe fn scale_pow2(self, n: Self) -> Self {
        let e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
        vmulq_f32(self, vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)))
    }
    /// 4 x 4 in registers ([`transpose4`]), rows and columns masked.
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f32,
        src_rs: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        let mut r = [vdupq_n_f32(0.0); 4];
        for (i, r) in r.iter_mut().enumerate().take(rows) {
            *r = Self::load_first(src.add(i * src_rs), cols);
        }
        let r = transpose4(r);
        for (c, r) in r.iter().enumerate().take(cols) {
            vst1q_f32(dst.add(c * dst_rs), *r);
        }
    }
}

/// A 4 x 4 transpose: element `c` of vector `r` goes to element `r` of
/// vector `c`. Interleaves pairs of rows (4-byte lanes), then pairs of
/// pairs (8-byte lanes).
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // [r0c0 r1c0 r0c2 r1c2], [r0c1 r1c1 r0c3 r1c3], and so for rows 2, 3.
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    [
        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Widening every f16 and bf16 bit pattern (subnormals, infinities,
    /// NaNs, -0 among them), 4 and 8 at a time, gives `half`'s f32 bits
    /// (NaNs: a NaN of the same sign).
    #[test]
    fn widening_every_16_bit_pattern_is_exact() {
        assert!(Neon::detected(), "NEON is mandatory on aarch64 Linux");
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let same = |got: f32, want: f32| {
            got.to_bits() == want.to_bits()
                || (got.is_nan()
                    && want.is_nan()
                    && got.is_sign_negative() == want.is_sign_negative())
        };
        for c in all.chunks_exact(8) {
            let p = c.as_ptr();
            // SAFETY: NEON is detected; `p` addresses 8 u16.
            let (f4, f8, b4, b8) = unsafe {
                let h = vld1q_u16(p);
                let mut out = [[0.0f32; 8]; 4];
                float32x4_t::load_f16(p).store(out[0].as_mut_ptr());
                float32x4_t::load_f16(p.add(4)).store(out[0].as_mut_ptr().add(4));
                let (lo, hi) = widen_f16x8(h);
                lo.store(out[1].as_mut_ptr());
                hi.store(out[1].as_mut_ptr().add(4));
                float32x4_t::load_bf16(p).store(out[2].as_mut_ptr());
                float32x4_t::load_bf16(p.add(4)).store(out[2].as_mut_ptr().add(4));
                let (lo, hi) = widen_bf16x8(h);
                lo.store(out[3].as_mut_ptr());
                hi.store(out[3].as_mut_ptr().add(4));
                (out[0], out[1], out[2], out[3])
            };
            for (i, &bits) in c.iter().enumerate() {
                let f = half::f16::from_bits(bits).to_f32();
                let b = half::bf16::from_bits(bits).to_f32();
                assert!(
                    same(f4[i], f) && same(f8[i], f),
                    "f16 {bits:#06x}: {} {} vs {f}",
                    f4[i],
                    f8[i]
                );
                assert!(
                    same(b4[i], b) && same(b8[i], b),
                    "bf16 {bits:#06x}: {} {} vs {b}",
                    b4[i],
                    b8[i]
                );
            }
        }
    }

    /// `recip` within 2^-22 relative of `1 / x` over normal floats of every
    /// exponent the kernels meet, and exact at 0 and infinity; `round`,
    /// `scale_pow2` and `with_sign_of` on their contracts' edges.
    #[test]
    fn recip_round_scale_and_sign() {
        assert!(Neon::detected(), "NEON is mandatory on aarch64 Linux");
        // SAFETY: NEON is detected.
        let lanes = |v: float32x4_t| unsafe {
            let mut o = [0.0f32; 4];
            v.store(o.as_mut_ptr());
            o
        };
        let mut x = 1.0e-30f32;
        while x < 1.0e30 {
            for s in [1.0f32, -1.0] {
                let xs = [x * s, x * 1.37 * s, x * 1.9999 * s, x * 1.5 * s];
                // SAFETY: NEON is detected.
                let r = lanes(unsafe { float32x4_t::load(xs.as_ptr()).recip() });
                for (x, r) in xs.iter().zip(r) {
                    let e = ((r as f64) * (*x as f64) - 1.0).abs();
                    assert!(e < 2f64.powi(-22), "recip({x}) = {r}: error {e:e}");
                }
            }
            x *= 3.7;
        }
        // SAFETY: NEON is detected.
        unsafe {
            let r = lanes(float32x4_t::load([0.0, -0.0, f32::INFINITY, 1.0].as_ptr()).recip());
            assert_eq!(r, [f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0]);
            let v = float32x4_t::load([0.5, 1.5, -2.5, 4194303.5].as_ptr());
            assert_eq!(lanes(v.round()), [0.0, 2.0, -2.0, 4194304.0]);
            let n = float32x4_t::load([-126.0, 127.0, 0.0, 3.0].as_ptr());
            let s = lanes(float32x4_t::splat(1.0).scale_pow2(n));
            assert_eq!(s, [2f32.powi(-126), 2f32.powi(127), 1.0, 8.0]);
            let m = float32x4_t::load([1.0, 2.0, 3.0, 0.0].as_ptr());
            let sign = float32x4_t::load([-0.0, 5.0, -1.0, -7.0].as_ptr());
            let got = lanes(m.with_sign_of(sign));
            assert_eq!(got.map(f32::to_bits), [-1.0f32, 2.0, -3.0, -0.0].map(f32::to_bits));
        }
    }

    /// Every size of block of the transposition, against its definition;
    /// the rest of `dst` untouched.
    #[test]
    fn transpose_block_matches_its_definition() {
        assert!(Neon::detected(), "NEON is mandatory on aarch64 Linux");
        let src: Vec<f32> = (0..40).map(|i| i as f32 + 0.5).collect();
        for rows in 1..=4 {
            for cols in 1..=4 {
                let mut got = vec![-1.0f32; 4 * 9];
                let mut want = got.clone();
                for c in 0..cols {
                    for r in 0..4 {
                        want[c * 9 + r] = if r < rows { src[r * 10 + c] } else { 0.0 };
                    }
                }
                // SAFETY: NEON is detected; `src` holds 4 rows of 4 at
                // stride 10, `got` 4 rows of 4 at stride 9.
                unsafe {
                    float32x4_t::transpose_block(src.as_ptr(), 10, rows, cols, got.as_mut_ptr(), 9)
                };
                assert_eq!(got, want, "{rows} x {cols}");
            }
        }
    }
}
