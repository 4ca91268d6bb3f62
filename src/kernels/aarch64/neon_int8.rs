//! The NEON int8 micro-kernels (see [`TileI8`]): `smmla` where the CPU has
//! the int8 matrix-multiply extension (panels of 8 depths a column), `sdot`
//! where it has the dot-product extension, widening multiplies (`smull`,
//! `smlal`, `sadalp`) on any aarch64 CPU (panels of 4 depths). Each reads
//! the activations as signed bytes `p` and sums `p q` exactly in i32;
//! [`finish`] writes the outputs, the same bits as on every other
//! instruction set.
//!
//! Like the f32 micro-kernel, these ignore the tile's prefetch hints.

use crate::kernels::int8::tile::{finish, TileI8};
use std::arch::aarch64::*;
use std::arch::asm;
use std::mem::MaybeUninit;

/// Columns of an int8 tile: two vectors of four i32 sums.
pub(super) const NR: usize = 8;

/// Row `r`'s activations `p` for groups `g..g + 4`.
///
/// # Safety
/// The CPU has NEON; the row holds 16 bytes from group `g` (the quantised
/// rows have 64 bytes of slack past the depth).
#[inline(always)]
unsafe fn signed_row(t: &TileI8, r: usize, g: usize) -> int8x16_t {
    vld1q_s8(t.a.add(r * t.lda + 4 * g).cast())
}

/// `acc + sum_i b[4 j + i] a[4 L + i]` in lane `j`: `sdot` by element.
///
/// # Safety
/// The CPU has the dot-product extension.
#[inline(always)]
unsafe fn sdot_lane<const L: i32>(acc: int32x4_t, b: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` (FEAT_DotProd, which the caller's CPU has) reads and
    // writes only these registers.
    asm!(
        "sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[{l}]",
        acc = inout(vreg) acc,
        b = in(vreg) b,
        a = in(vreg) a,
        l = const L,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// One group (`L` of the 4 in the rows' registers) of an `sdot` tile.
///
/// # Safety
/// The CPU has the dot-product extension; `b` addresses the group's 32
/// panel bytes.
#[inline(always)]
unsafe fn sdot_group<const L: i32, const ROWS: usize>(
    acc: &mut [[int32x4_t; 2]; ROWS],
    a: &[int8x16_t; ROWS],
    b: *const u8,
) {
    let b = [vld1q_s8(b.cast()), vld1q_s8(b.add(16).cast())];
    for (acc, &a) in acc.iter_mut().zip(a) {
        acc[0] = sdot_lane::<L>(acc[0], b[0], a);
        acc[1] = sdot_lane::<L>(acc[1], b[1], a);
    }
}

/// The int8 micro-kernel on `sdot`: `ROWS` (up to 8) rows of 8 columns,
/// 16 accumulators, the rows' 8 registers of activations and the group's
/// 2 of weights.
///
/// # Safety
/// The CPU has NEON and the dot-product extension; `b` points at
/// `groups * 32` panel bytes; `t` as [`TileI8`] describes for `ROWS` rows.
#[target_feature(enable = "neon,dotprod")]
#[inline(never)]
pub(super) unsafe fn sdot<const ROWS: usize>(groups: usize, b: *const u8, t: &TileI8) {
    let mut acc = [[vdupq_n_s32(0); 2]; ROWS];
    let mut g = 0;
    while g < groups {
        let mut a = [vdupq_n_s8(0); ROWS];
        for (r, a) in a.iter_mut().enumerate() {
            *a = signed_row(t, r, g);
        }
        let block = b.add(g * 4 * NR);
        sdot_group::<0, ROWS>(&mut acc, &a, block);
        if g + 1 < groups {
            sdot_group::<1, ROWS>(&mut acc, &a, block.add(32));
        }
        if g + 2 < groups {
            sdot_group::<2, ROWS>(&mut acc, &a, block.add(64));
        }
        if g + 3 < groups {
            sdot_group::<3, ROWS>(&mut acc, &a, block.add(96));
        }
        g += 4;
    }
    let mut sums = MaybeUninit::<[[i32; NR]; ROWS]>::uninit();
    let at = sums.as_mut_ptr().cast::<i32>();
    for (r, [a0, a1]) in acc.into_iter().enumerate() {
        vst1q_s32(at.add(r * NR), a0);
        vst1q_s32(at.add(r * NR + 4), a1);
    }
    // SAFETY: the loop wrote every element.
    finish::<float32x4_t, ROWS, NR>(sums.assume_init_ref(), t)
}

/// `acc + a b^T` for `a` 2 rows x 8 depths and `b` 2 columns x 8 depths
/// (each a register: the two 8-byte halves), as a 2 x 2 block in the
/// lanes (row-major): `smmla`.
///
/// # Safety
/// The CPU has the int8 matrix-multiply extension.
#[inline(always)]
unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `smmla` (FEAT_I8MM, which the caller's CPU has) reads and
    // writes only these registers.
    asm!(
        "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// The int8 micro-kernel on `smmla`: `ROWS` (up to 8) rows of 8 columns
/// as 2 x 2 blocks, `P = ROWS / 2` (rounded up) row pairs times 4 column
/// pairs: 16 accumulators, 4 registers of activations (a row pair's 8
/// depths, one load: the rows come in chunks of 8 bytes) and 4 of weights
/// (a column pair's) per group of 8 depths. An odd last row is computed
/// twice and written once.
///
/// # Safety
/// The CPU has NEON and i8mm; `b` points at `groups * 64` panel bytes
/// (groups of 8 depths); `t` as [`TileI8`] describes for `ROWS` rows in
/// chunks of 8 bytes.
#[target_feature(enable = "neon,i8mm")]
#[inline(never)]
pub(super) unsafe fn i8mm<const ROWS: usize, const P: usize>(
    groups: usize,
    b: *const u8,
    t: &TileI8,
) {
    debug_assert_eq!(P, ROWS.div_ceil(2));
    debug_assert_eq!(t.lda, 8);
    let mut acc = [[vdupq_n_s32(0); 4]; P];
    for g in 0..groups {
        let block = b.add(g * 8 * NR);
        let w = [0, 16, 32, 48].map(|o| vld1q_s8(block.add(o).cast()));
        // The group's 8 bytes of every row, one row after another.
        let rows = t.a.add(g * t.step);
        for (p, acc) in acc.iter_mut().enumerate() {
            let a = if 2 * p + 1 < ROWS {
                vld1q_s8(rows.add(16 * p).cast())
            } else {
                let last = vld1_s8(rows.add(16 * p).cast());
                vcombine_s8(last, last)
            };
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = smmla(*acc, a, w);
            }
        }
    }
    let mut sums = MaybeUninit::<[[i32; NR]; ROWS]>::uninit();
    let at = sums.as_mut_ptr().cast::<i32>();
    for (p, acc) in acc.into_iter().enumerate() {
        for (c, v) in acc.into_iter().enumerate() {
            vst1_s32(at.add(2 * p * NR + 2 * c), vget_low_s32(v));
            if 2 * p + 1 < ROWS {
                vst1_s32(at.add((2 * p + 1) * NR + 2 * c), vget_high_s32(v));
            }
        }
    }
    // SAFETY: the loop wrote every element (row pairs cover the rows, the
    // 4 column pairs the 8 columns).
    finish::<float32x4_t, ROWS, NR>(sums.assume_init_ref(), t)
}

/// Rows of a widening-multiply pass: each has 4 accumulators.
pub(super) const SMULL_ROWS: usize = 4;

/// Adds two groups of products to a row's accumulators: for each half of
/// the weights (2 columns x 4 depths), `smull` then `smlal` (products of
/// two groups in i16: at most 2 x 127 x 127, exact), then `sadalp` into
/// the i32 lanes (two a column, added at the end).
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn smull_pair(acc: &mut [int32x4_t; 4], a: [int8x16_t; 2], b: &[[int8x16_t; 2]; 2]) {
    for (z, acc) in acc.chunks_exact_mut(2).enumerate() {
        let lo = vmlal_s8(
            vmull_s8(vget_low_s8(b[0][z]), vget_low_s8(a[0])),
            vget_low_s8(b[1][z]),
            vget_low_s8(a[1]),
        );
        let hi = vmlal_high_s8(vmull_high_s8(b[0][z], a[0]), b[1][z], a[1]);
        acc[0] = vpadalq_s16(acc[0], lo);
        acc[1] = vpadalq_s16(acc[1], hi);
    }
}

/// Group `g`'s four activations of a row register, in every 32-bit lane.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn dup_group(a: int8x16_t, l: usize) -> int8x16_t {
    let a = vreinterpretq_s32_s8(a);
    vreinterpretq_s8_s32(match l {
        0 => vdupq_laneq_s32::<0>(a),
        1 => vdupq_laneq_s32::<1>(a),
        2 => vdupq_laneq_s32::<2>(a),
        _ => vdupq_laneq_s32::<3>(a),
    })
}

/// The int8 micro-kernel on widening multiplies: `ROWS` (up to
/// [`SMULL_ROWS`]) rows of 8 columns.
///
/// # Safety
/// The CPU has NEON; `b` points at `groups * 32` panel bytes; `t` as
/// [`TileI8`] describes for `ROWS` rows.
#[target_feature(enable = "neon")]
#[inline(never)]
pub(super) unsafe fn smull<const ROWS: usize>(groups: usize, b: *const u8, t: &TileI8) {
    let mut acc = [[vdupq_n_s32(0); 4]; ROWS];
    let zero = vdupq_n_s8(0);
    let mut g = 0;
    while g < groups {
        let mut a = [zero; ROWS];
        for (r, a) in a.iter_mut().enumerate() {
            *a = signed_row(t, r, g);
        }
        // Groups g..g + 4 in pairs; a missing group has zero weights.
        for pair in 0..2 {
            let g0 = g + 2 * pair;
            if g0 >= groups {
                break;
            }
            let block = b.add(g0 * 4 * NR);
            let second = g0 + 1 < groups;
            let w = |i: usize| if second || i < 32 { vld1q_s8(block.add(i).cast()) } else { zero };
            let bw = [[w(0), w(16)], [w(32), w(48)]];
            for (acc, &a) in acc.iter_mut().zip(&a) {
                smull_pair(acc, [dup_group(a, 2 * pair), dup_group(a, 2 * pair + 1)], &bw);
            }
        }
        g += 4;
    }
    let mut sums = MaybeUninit::<[[i32; NR]; ROWS]>::uninit();
    let at = sums.as_mut_ptr().cast::<i32>();
    for (r, acc) in acc.into_iter().enumerate() {
        // Lanes (2 j, 2 j + 1) of a pair of accumulators are column j's.
        vst1q_s32(at.add(r * NR), vpaddq_s32(acc[0], acc[1]));
        vst1q_s32(at.add(r * NR + 4), vpaddq_s32(acc[2], acc[3]));
    }
    // SAFETY: the loop wrote every element.
    finish::<float32x4_t, ROWS, NR>(sums.assume_init_ref(), t)
}
