//! The int8 micro-kernel of the x86-64 instruction sets, written once over
//! [`DotVec`]: a vector of i32 sums and the instructions that add four
//! int8 products to each lane (AVX-512 VNNI, AVX-VNNI, or AVX2's
//! `vpmaddubsw` sequence). See [`TileI8`] for the operands.
//!
//! Each group of four depths loads the panel's two vectors (`2 x LANES`
//! columns), broadcasts each row's four activation bytes and adds the
//! products to the row's two accumulators; then [`finish`] writes the
//! outputs, the same bits on every instruction set.

use super::microkernel::Spread;
use crate::kernels::int8::tile::{finish, TileI8};
use crate::kernels::simd::F32Vec;
use std::mem::MaybeUninit;

/// A vector of i32 sums and the int8 dot product that accumulates into it.
///
/// # Safety
/// Implementations do what each method's doc says; callers guarantee that
/// the CPU has the instructions they use.
pub(crate) unsafe trait DotVec: Copy {
    /// i32 lanes: output columns a vector.
    const LANES: usize;
    /// Whether [`DotVec::dot`] multiplies unsigned activation bytes `p +
    /// 128` (else signed `p`): the sums then exceed `sum p q` by the tile's
    /// offsets.
    const UNSIGNED: bool;
    /// One row's four activation bytes, prepared for [`DotVec::dot`].
    type Row: Copy;

    /// Every lane 0.
    unsafe fn zero() -> Self;
    /// `4 LANES` weight bytes from `p` (unaligned).
    unsafe fn load(p: *const u8) -> Self;
    /// Four activation bytes (little-endian in `four`) for every lane.
    unsafe fn row(four: i32) -> Self::Row;
    /// Adds to each lane the four products of `a`'s bytes and the lane's
    /// four bytes of `b`.
    unsafe fn dot(self, a: Self::Row, b: Self) -> Self;
    /// `self - b`, lane by lane (wrapping).
    unsafe fn sub(self, b: Self) -> Self;
    /// Stores the lanes at `p` (unaligned).
    unsafe fn store(self, p: *mut i32);
}

/// Computes one int8 tile of `ROWS` rows and `NR = 2 D::LANES` columns over
/// `groups` groups of four depths, prefetching the tile's share of the
/// next panel (`L1`: as [`Spread`]).
///
/// # Safety
/// The CPU has `D`'s and `V`'s instructions; `b` points at
/// `groups * 4 * NR` panel bytes; `t` as [`TileI8`] describes for `ROWS`
/// rows and `NR` columns.
#[inline(always)]
pub(crate) unsafe fn tile_i8<
    D: DotVec,
    V: F32Vec,
    const ROWS: usize,
    const NR: usize,
    const L1: bool,
>(
    groups: usize,
    b: *const u8,
    t: &TileI8,
) {
    debug_assert_eq!(NR, 2 * D::LANES);
    let mut acc = [[D::zero(); 2]; ROWS];
    let mut share = Spread::<L1>::new(t.next, t.next_lines, groups);
    for g in 0..groups {
        share.step();
        let block = b.add(g * 4 * NR);
        let bv = [D::load(block), D::load(block.add(4 * D::LANES))];
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = D::row(t.a.add(r * t.lda + 4 * g).cast::<i32>().read_unaligned());
            acc[0] = acc[0].dot(a, bv[0]);
            acc[1] = acc[1].dot(a, bv[1]);
        }
    }
    // The exact sums `sum p q` (without the offsets of unsigned bytes).
    let offset = if D::UNSIGNED {
        [D::load(t.offset.cast()), D::load(t.offset.add(D::LANES).cast())]
    } else {
        [D::zero(); 2]
    };
    let mut sums = MaybeUninit::<[[i32; NR]; ROWS]>::uninit();
    let at = sums.as_mut_ptr().cast::<i32>();
    // (By value: a borrowed accumulator array stays in memory.)
    for (r, [a0, a1]) in acc.into_iter().enumerate() {
        a0.sub(offset[0]).store(at.add(r * NR));
        a1.sub(offset[1]).store(at.add(r * NR + D::LANES));
    }
    // SAFETY: the loop wrote every element (`NR = 2 LANES` a row).
    finish::<V, ROWS, NR>(sums.assume_init_ref(), t)
}
