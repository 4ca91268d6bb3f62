//! The layout packed products read their activations in ([`RowBlocks`]),
//! and where a product writes its results ([`Dest`]): rows, or the next
//! product's packed input.

use super::{KC, LDA, MR_MAX};
use crate::kernels::linear_product::Input;
use crate::kernels::norm::{normalize_segment, row_stats};
use crate::kernels::team;
use std::ops::Range;

/// The size of row blocks of at most `cap` rows that split `m` rows
/// evenly: 800 rows at a cap of 336 make blocks of 267, 267 and 266, not
/// 336, 336 and 128, whose shares (see
/// [`split_work`](super::tasks::split_work)) left one thread idle at the
/// end of every product while the other finished a large one.
pub(crate) fn balanced_blocks(m: usize, cap: usize) -> usize {
    m.div_ceil(m.div_ceil(cap.max(1)).max(1)).max(1)
}

/// Floats `m` rows of `k` activations take packed ([`RowBlocks::len`]).
pub(crate) fn packed_len(m: usize, k: usize) -> usize {
    m * k.div_ceil(KC).max(1) * LDA
}

/// How the `m x k` activations are cut and packed: row blocks of `mc` rows;
/// within a block, depth blocks of `KC` columns, each stored as the block's
/// rows at stride [`LDA`] (a plain copy, contiguous per depth block). The
/// same for every instruction set.
pub(crate) struct RowBlocks {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) mc: usize,
    kblocks: usize,
}

impl RowBlocks {
    /// The layout of `m` rows of `k` activations for a product of depth `k`.
    pub(crate) fn new(m: usize, k: usize) -> Self {
        // At most about 1 MiB of packed activations per row block (kept in L2).
        let mc = balanced_blocks(m, ((1 << 18) / k.max(1)).clamp(MR_MAX, 4096));
        RowBlocks { m, k, mc, kblocks: k.div_ceil(KC).max(1) }
    }

    /// Where depth block `kb` of the row block starting at row `m0` (of
    /// `mlen` rows) starts in the packed buffer.
    pub(super) fn offset(&self, m0: usize, mlen: usize, kb: usize) -> usize {
        (m0 * self.kblocks + kb * mlen) * LDA
    }

    /// Rows and depth laid out.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.m, self.k)
    }

    /// Row blocks.
    pub(super) fn count(&self) -> usize {
        self.m.div_ceil(self.mc)
    }

    /// Floats the packed buffer takes.
    pub(crate) fn len(&self) -> usize {
        packed_len(self.m, self.k)
    }

    /// Where activation `(row, col)` is in the packed buffer; the next
    /// columns up to the depth block's end follow it.
    pub(crate) fn index(&self, row: usize, col: usize) -> usize {
        let m0 = row / self.mc * self.mc;
        let mlen = self.mc.min(self.m - m0);
        self.offset(m0, mlen, col / KC) + (row - m0) * LDA + col % KC
    }

    /// Writes `src` as activations `(row, col..col + src.len())` of the
    /// packed buffer at `a`.
    ///
    /// # Safety
    /// `a` addresses [`RowBlocks::len`] floats, `col + src.len() <= k`, and
    /// no one else accesses those activations meanwhile.
    pub(crate) unsafe fn write(&self, a: OutPtr, row: usize, col: usize, src: &[f32]) {
        let mut c = col;
        let mut rest = src;
        while !rest.is_empty() {
            let len = rest.len().min(KC - c % KC);
            std::ptr::copy_nonoverlapping(rest.as_ptr(), a.get().add(self.index(row, c)), len);
            rest = &rest[len..];
            c += len;
        }
    }

    /// Copies packed activations `a` back to `[m, k]` rows.
    pub(crate) fn unpack(&self, a: &[f32], out: &mut [f32]) {
        for (i, row) in out.chunks_exact_mut(self.k.max(1)).take(self.m).enumerate() {
            for (kb, seg) in row.chunks_mut(KC).enumerate() {
                let at = self.index(i, kb * KC);
                seg.copy_from_slice(&a[at..at + seg.len()]);
            }
        }
    }

    /// Packs `x` (`[m, k]`) into `a`, normalising the rows on the way for
    /// [`Input::Normed`]; in parallel over rows when large.
    pub(crate) fn pack(&self, x: Input<'_>, a: &mut [f32], threads: usize) {
        let (m, k, len) = (self.m, self.k, self.len());
        assert!(a.len() >= len && !matches!(x, Input::Packed(_)), "packing: buffer");
        let dst = OutPtr(a.as_mut_ptr());
        let pack_row = |i: usize| {
            let src = &x.rows()[i * k..][..k];
            let stats = match x {
                Input::Normed(_, ln) => Some((ln, row_stats(src, ln.eps))),
                Input::Rows(_) | Input::Packed(_) => None,
            };
            for kb in 0..k.div_ceil(KC) {
                let k0 = kb * KC;
                let kc = KC.min(k - k0);
                let at = self.index(i, k0);
                // SAFETY: row `i` of depth block `kb` owns `a[at..at + kc]`
                // (rows are `LDA >= kc` apart and blocks do not overlap), so no
                // other task writes there, and `at + kc <= len <= a.len()`.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), kc) };
                let seg = &src[k0..k0 + kc];
                match stats {
                    Some((ln, (mean, rstd))) => {
                        let (w, b) = (&ln.weight[k0..k0 + kc], &ln.bias[k0..k0 + kc]);
                        normalize_segment(seg, w, b, mean, rstd, row)
                    }
                    None => row.copy_from_slice(seg),
                }
            }
        };
        // Chunks of 8 rows: a 50-row image is 7 tasks for two threads.
        if threads > 1 && m * k >= 1 << 14 {
            team::for_each(m.div_ceil(8), |c| (c * 8..m.min(c * 8 + 8)).for_each(pack_row));
        } else {
            (0..m).for_each(pack_row);
        }
    }
}

/// Where a product writes its `m x n` results.
#[derive(Clone, Copy)]
pub(crate) enum Dest<'a> {
    /// Row `i` at `out[i * rs..]`.
    Rows(usize),
    /// In the layout packed products read their activations in (the next
    /// product's input, packed as it is computed, with no copy and no step
    /// of its own).
    Packed(&'a RowBlocks),
}

impl Dest<'_> {
    /// Where output `(row, col)` goes, and the row stride from there on
    /// (for rows in one row block and columns in one depth block).
    pub(super) fn at(self, row: usize, col: usize) -> (usize, usize) {
        match self {
            Dest::Rows(rs) => (row * rs + col, rs),
            Dest::Packed(l) => (l.index(row, col), LDA),
        }
    }

    /// `cols` cut where the layout's rows are not contiguous (depth blocks).
    pub(super) fn runs(self, cols: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        cut_at(cols, if let Dest::Packed(_) = self { KC } else { usize::MAX })
    }

    /// `rows` cut where the layout's row stride is not constant (its row
    /// blocks).
    pub(super) fn row_runs(self, rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        cut_at(rows, if let Dest::Packed(l) = self { l.mc } else { usize::MAX })
    }
}

/// `range` cut at the multiples of `step`.
fn cut_at(range: Range<usize>, step: usize) -> impl Iterator<Item = Range<usize>> {
    let (mut at, end) = (range.start, range.end);
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let next = end.min((at / step).saturating_add(1).saturating_mul(step));
            let run = at..next;
            at = next;
            run
        })
    })
}

/// An output (or packing) pointer shared by the threads of one product:
/// f32 outputs, or the int8 path's quantised rows.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr<T = f32>(pub(crate) *mut T);

impl<T> OutPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: each thread writes a disjoint set of rows and columns (or of
// quantised rows) through it (see `PackedLinear::forward_to` and
// `Int8Linear::forward`), and the borrow it came from outlives the threads.
unsafe impl<T> Send for OutPtr<T> {}
// SAFETY: as above; shared references to it only copy the pointer.
unsafe impl<T> Sync for OutPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::pseudo;

    /// Rows written into a layout of several row blocks in pieces that
    /// straddle depth blocks are where packing puts them, and unpack back.
    #[test]
    fn layout_writes_pack_and_unpack() {
        let (m, k) = (300, 1000);
        let layout = RowBlocks::new(m, k);
        assert!(layout.mc < m);
        let x = pseudo(m * k, 7);
        let mut packed = vec![0.0; layout.len()];
        layout.pack(Input::Rows(&x), &mut packed, 2);
        let mut written = vec![0.0; layout.len()];
        for (i, row) in x.chunks(k).enumerate() {
            for (c, piece) in row.chunks(300).enumerate() {
                // SAFETY: `written` holds the layout, pieces are disjoint.
                unsafe { layout.write(OutPtr(written.as_mut_ptr()), i, c * 300, piece) };
            }
        }
        assert!(written == packed);
        let mut back = vec![0.0; m * k];
        layout.unpack(&written, &mut back);
        assert!(back == x);
    }

    #[test]
    fn packed_destinations_run_within_depth_blocks() {
        let layout = RowBlocks::new(4, 600);
        let runs: Vec<_> = Dest::Packed(&layout).runs(200..600).collect();
        assert_eq!(runs, vec![200..256, 256..512, 512..600]);
        assert_eq!(Dest::Rows(600).runs(200..600).collect::<Vec<_>>(), vec![200..600]);
    }
}
