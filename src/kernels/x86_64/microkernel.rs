//! The GEMM micro-kernel of the x86-64 instruction sets, written once over
//! their vectors (AVX-512: `ROWS x 32` from two `__m512`; AVX2: `ROWS x
//! 16` from two `__m256`): a block of `C (+)= A B + bias`, `B` a packed
//! panel of f32, f16 or bf16 (see [`Tile`]).
//!
//! Each step of the depth loop loads one row of the panel (`VECS` vectors,
//! widened from 16-bit when needed), broadcasts one activation per output
//! row and issues `VECS * ROWS` fused multiply-adds into register
//! accumulators. Meanwhile the tile prefetches its share of the next panel
//! slice ([`Spread`]).

use crate::kernels::packed::{finish_tile, load_panel, Tile, DT_F32, LDA};
use crate::kernels::simd::F32Vec;
use std::arch::x86_64::*;

/// How many panel rows ahead the first tile of a slice prefetches.
const PREFETCH_ROWS: usize = 16;

/// Depth steps per group of the micro-kernel's loop (the prefetch
/// bookkeeping runs once a group).
const UNROLL: usize = 4;

/// The body of an x86 instruction set's [`Isa::tile`](crate::kernels::isa::Isa::tile):
/// calls `$kernel::<ROWS, DT, L1>(kc, b, t)`, the instance for the tile's
/// height (at most `$max` rows), panel type and prefetch hint (L1 on AMD,
/// see [`super::spread_into_l1`]).
macro_rules! dispatch_tile {
    ($max:tt, $kernel:ident, $dtype:expr, $rows:expr, ($kc:expr, $b:expr, $t:expr)) => {{
        use $crate::kernels::packed::{with_rows, PanelType, DT_BF16, DT_F16, DT_F32};
        match ($dtype, $crate::kernels::x86_64::spread_into_l1()) {
            (PanelType::F32, false) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_F32, false>($kc, $b, $t))
            }
            (PanelType::F32, true) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_F32, true>($kc, $b, $t))
            }
            (PanelType::F16, false) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_F16, false>($kc, $b, $t))
            }
            (PanelType::F16, true) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_F16, true>($kc, $b, $t))
            }
            (PanelType::BF16, false) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_BF16, false>($kc, $b, $t))
            }
            (PanelType::BF16, true) => {
                with_rows!($max, $rows, |R| $kernel::<R, DT_BF16, true>($kc, $b, $t))
            }
        }
    }};
}
pub(crate) use dispatch_tile;

/// A tile's share of the next panel slice (`lines` cache lines from
/// `next`), prefetched evenly over the tile's `steps` depth steps: about
/// one line every few steps rather than bursts of two a step, which
/// filled the core's line-fill buffers and stalled the loads of the
/// multiply-adds (a stream of misses needs only a few in flight).
///
/// `L1` false prefetches into L2 (`prefetcht1`), true into L1 as well
/// (`prefetcht0`); see [`super::spread_into_l1`] for which CPUs take which.
pub(crate) struct Spread<const L1: bool> {
    line: *const u8,
    left: usize,
    acc: usize,
    lines: usize,
    steps: usize,
}

impl<const L1: bool> Spread<L1> {
    #[inline(always)]
    pub(crate) fn new(next: *const u8, lines: usize, steps: usize) -> Self {
        Spread { line: next, left: lines, acc: 0, lines, steps: steps.max(1) }
    }

    /// One depth step: the lines due by now (`lines / steps` of them on
    /// average, so all are issued by the last step).
    #[inline(always)]
    pub(crate) fn step(&mut self) {
        self.acc += self.lines;
        while self.acc >= self.steps && self.left > 0 {
            self.acc -= self.steps;
            self.left -= 1;
            // SAFETY: a prefetch is a hint (SSE, in every x86-64 CPU); it
            // never faults, whatever the address.
            unsafe {
                if L1 {
                    _mm_prefetch::<_MM_HINT_T0>(self.line.cast());
                } else {
                    _mm_prefetch::<_MM_HINT_T1>(self.line.cast());
                }
            }
            // A hint only, possibly past the panels: no `add`, never dereferenced.
            self.line = self.line.wrapping_add(64);
        }
    }
}

/// Where a tile's depth loop is: its activations' next column and the
/// index of the panel's next row.
struct Step {
    a: *const f32,
    bi: usize,
}

/// One depth step of a tile: loads one panel row (`VECS` vectors),
/// broadcasts each row's activation, and adds their products to the
/// accumulators (a function, not a closure: a closure in a generic body has
/// no target features of its own, and its intrinsics would be calls).
///
/// # Safety
/// As [`tile`], for the step at `at`.
#[inline(always)]
unsafe fn step<V: F32Vec, const ROWS: usize, const VECS: usize, const DT: u8>(
    acc: &mut [[V; VECS]; ROWS],
    at: &mut Step,
    b: *const u8,
    prefetch: bool,
) {
    let nr = VECS * V::LANES;
    let es = if DT == DT_F32 { 4 } else { 2 };
    if prefetch {
        // The panel row PREFETCH_ROWS steps ahead, and as many lines as an
        // f32 panel row has (two rows of a 16-bit panel). A hint only: it
        // may point past the panel, so no `add` (never dereferenced).
        let ahead = b.wrapping_add((at.bi + PREFETCH_ROWS * nr) * es);
        for l in 0..(nr * 4).div_ceil(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l).cast());
        }
    }
    let mut bv = [V::splat(0.0); VECS];
    for (z, bv) in bv.iter_mut().enumerate() {
        *bv = load_panel::<V, DT>(b, at.bi + z * V::LANES);
    }
    for (r, acc) in acc.iter_mut().enumerate() {
        let av = V::splat(*at.a.add(r * LDA));
        for (acc, bv) in acc.iter_mut().zip(&bv) {
            *acc = av.mul_add(*bv, *acc);
        }
    }
    at.a = at.a.add(1);
    at.bi += nr;
}

/// Computes one tile over a depth of `kc`: `ROWS` rows times `VECS`
/// vectors of columns (the panel width).
///
/// # Safety
/// The CPU has `V`'s instruction set. `b` points at `kc * VECS * LANES`
/// panel elements of type `DT`; `t.a` at `ROWS` rows of `kc` f32 at stride
/// `LDA`; `t.c` at `ROWS` rows of at least `t.n_valid` f32 (stride `t.ldc`)
/// that only this call accesses; `t.bias`, when not null, at `VECS * LANES`
/// f32.
#[inline(always)]
pub(crate) unsafe fn tile<
    V: F32Vec,
    const ROWS: usize,
    const VECS: usize,
    const DT: u8,
    const L1: bool,
>(
    kc: usize,
    b: *const u8,
    t: &Tile,
) {
    let mut acc = [[V::splat(0.0); VECS]; ROWS];
    let mut at = Step { a: t.a, bi: 0 };
    // Depth steps in groups of UNROLL: the prefetch bookkeeping runs once a
    // group, not once a step.
    let (groups, tail) = (kc / UNROLL, kc % UNROLL);
    let mut share = Spread::<L1>::new(t.next, t.next_lines, groups + usize::from(tail > 0));
    for _ in 0..groups {
        share.step();
        for _ in 0..UNROLL {
            step::<V, ROWS, VECS, DT>(&mut acc, &mut at, b, t.prefetch);
        }
    }
    if tail > 0 {
        share.step();
        for _ in 0..tail {
            step::<V, ROWS, VECS, DT>(&mut acc, &mut at, b, t.prefetch);
        }
    }
    finish_tile::<V, ROWS, VECS>(&acc, t)
}
