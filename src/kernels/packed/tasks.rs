//! How a product is shared among the threads: shares of row blocks x
//! panel ranges, claimed one at a time ([`split_work`]); and how a row
//! block is cut into micro-kernel tiles ([`tile_rows`]).

use crate::kernels::team;
use std::ops::Range;

/// How many threads a product of `work` multiply-adds over `panels` panels
/// uses: one when it is too small to be worth splitting.
pub(crate) fn threads_for(work: usize, threads: usize, panels: usize) -> usize {
    if work < 1 << 18 {
        1
    } else {
        threads.clamp(1, panels.max(1))
    }
}

/// A share of a product: row blocks `rows` (indices of blocks of `mc` rows)
/// times panels `p0..p1`.
#[derive(Clone)]
pub(crate) struct Share {
    pub rows: Range<usize>,
    pub p0: usize,
    pub p1: usize,
}

impl Share {
    /// Row blocks `rows` times panel range `c` of `panels` cut in `chunks`.
    fn cut(rows: Range<usize>, panels: usize, c: usize, chunks: usize) -> Share {
        Share { rows, p0: panels * c / chunks, p1: panels * (c + 1) / chunks }
    }
}

/// Runs `job` over shares covering `row_blocks` row blocks x `panels`
/// panels: inline when `t` is 1, else as tasks ([`team::for_each`]) that
/// the threads claim one at a time, so a core slowed by a neighbour (a
/// busy sibling hyperthread, an interrupt) does not keep the
/// other waiting at the end of every product. One row block: `4 t` panel
/// ranges. Several: each row block times `t` panel ranges, so each share
/// reads its block of activations once, as a fixed split would (finer
/// panel ranges everywhere re-read them from L3), except the middle row
/// block (two when their number is even), cut into `4 t`: the leader
/// claims from the front and the followers from the back, so the last
/// tasks of a product are those, and a thread that finishes first waits
/// for a quarter of a share at most.
pub(crate) fn split_work(row_blocks: usize, panels: usize, t: usize, job: impl Fn(Share) + Sync) {
    let cut = |rows, c, chunks| Share::cut(rows, panels, c, chunks);
    if t == 1 {
        job(cut(0..row_blocks, 0, 1))
    } else if row_blocks <= 1 {
        let chunks = (4 * t).min(panels);
        team::for_each(chunks, |c| job(cut(0..row_blocks, c, chunks)))
    } else {
        let shares = shares(row_blocks, panels, t);
        team::for_each(shares.len(), |i| job(shares[i].clone()))
    }
}

/// The shares of [`split_work`] over several row blocks, in claiming order.
fn shares(row_blocks: usize, panels: usize, t: usize) -> Vec<Share> {
    let mid = row_blocks / 2;
    let middle = |rb: usize| rb == mid || (row_blocks.is_multiple_of(2) && rb + 1 == mid);
    let mut shares = Vec::new();
    for rb in 0..row_blocks {
        let chunks = if middle(rb) { (4 * t).min(panels) } else { t };
        shares.extend((0..chunks).map(|c| Share::cut(rb..rb + 1, panels, c, chunks)));
    }
    shares
}

/// Height of tile `t` when `mlen` rows are split into `ntiles` near-equal tiles.
pub(crate) fn tile_rows(mlen: usize, ntiles: usize, t: usize) -> usize {
    mlen / ntiles + usize::from(t < mlen % ntiles)
}

/// Tile `t`'s share of the `lines` cache lines at `next` (the slice that
/// is computed next), for it to prefetch: its first line and line count.
pub(crate) fn next_share(
    next: *const u8,
    lines: usize,
    t: usize,
    ntiles: usize,
) -> (*const u8, usize) {
    let (l0, l1) = (lines * t / ntiles, lines * (t + 1) / ntiles);
    (next.wrapping_add(l0 * 64), l1 - l0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (row block, panel) pair is in exactly one share; the middle
    /// row block (two when their number is even) is cut four times finer.
    #[test]
    fn shares_cover_every_block_once_finer_in_the_middle() {
        let cases: [(usize, usize, usize, &[usize]); 4] = [
            (3, 24, 2, &[2, 8, 2]),
            (10, 24, 2, &[2, 2, 2, 2, 8, 8, 2, 2, 2, 2]),
            (2, 5, 2, &[5, 5]),
            (7, 96, 3, &[3, 3, 3, 12, 3, 3, 3]),
        ];
        for (row_blocks, panels, t, want) in cases {
            let shares = shares(row_blocks, panels, t);
            let mut seen = vec![0; row_blocks * panels];
            let mut per_block = vec![0; row_blocks];
            for s in &shares {
                for rb in s.rows.clone() {
                    per_block[rb] += 1;
                    (s.p0..s.p1).for_each(|p| seen[rb * panels + p] += 1);
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{row_blocks}x{panels}");
            assert_eq!(per_block, want, "{row_blocks}x{panels}");
        }
    }
}
