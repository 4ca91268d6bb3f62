//! Where a product's quantised activations go ([`TileLayout`]): one row
//! after another, or each micro-kernel tile's rows interleaved in chunks of
//! a few bytes, so that one load takes the same depths of neighbouring rows
//! (`smmla`'s row pairs).

/// The quantised rows of an `m`-row product, as the int8 tiles read them.
///
/// The rows are cut as the product computes them: row blocks of `mc` rows,
/// each into `ceil(len / mr)` tiles of balanced heights (as
/// [`tile_rows`](crate::kernels::packed::tile_rows)). A row takes
/// `row_bytes` bytes, a tile of `h` rows starting at row `t0` bytes
/// `t0 * row_bytes .. (t0 + h) * row_bytes`, its rows interleaved in
/// chunks of `c` bytes: byte `d` of the tile's row `i` is at
/// `t0 * row_bytes + (d / c) * h c + i c + d % c`. With `c = row_bytes`
/// that is row `t0 + i` at `(t0 + i) * row_bytes`: rows one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileLayout {
    m: usize,
    mc: usize,
    mr: usize,
    c: usize,
    row_bytes: usize,
}

impl TileLayout {
    /// The layout of `m` rows of `row_bytes` bytes (a multiple of `c`) for
    /// row blocks of `mc` rows, tiles of at most `mr` rows and chunks of
    /// `c` bytes.
    pub(crate) fn new(m: usize, row_bytes: usize, mc: usize, mr: usize, c: usize) -> Self {
        let (mc, mr, c) = (mc.max(1), mr.max(1), c.max(1));
        assert!(
            row_bytes.is_multiple_of(c),
            "int8 layout: rows of {row_bytes} bytes in chunks of {c}"
        );
        TileLayout { m, mc, mr, c, row_bytes }
    }

    /// Bytes a row takes.
    pub(crate) fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Bytes of a chunk.
    pub(crate) fn chunk(&self) -> usize {
        self.c
    }

    /// Bytes the `m` rows take.
    pub(crate) fn len(&self) -> usize {
        self.m * self.row_bytes
    }

    /// Rows of a row block.
    pub(crate) fn block_rows(&self) -> usize {
        self.mc
    }

    /// Tiles of a row block of `len` rows.
    pub(crate) fn tiles(&self, len: usize) -> usize {
        len.div_ceil(self.mr)
    }

    /// Where row `row`'s first chunk is, and the bytes from one of its
    /// chunks to the next (its tile's height times `c`).
    pub(crate) fn place(&self, row: usize) -> (usize, usize) {
        debug_assert!(row < self.m);
        let m0 = row / self.mc * self.mc;
        let len = self.mc.min(self.m - m0);
        let ntiles = self.tiles(len);
        // The first `long` tiles have `q + 1` rows, the others `q` (as
        // `tile_rows`).
        let (q, long) = (len / ntiles, len % ntiles);
        let i = row - m0;
        let (t0, h) = if i < long * (q + 1) {
            (i / (q + 1) * (q + 1), q + 1)
        } else {
            let j = i - long * (q + 1);
            (long * (q + 1) + j / q * q, q)
        };
        ((m0 + t0) * self.row_bytes + (i - t0) * self.c, h * self.c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::packed::tile_rows;

    /// Walking the tiles as the product does (row blocks, then `tile_rows`
    /// heights) finds every row where [`TileLayout::place`] puts it, and
    /// the rows' chunks fill `0..len()` exactly once; with chunks of whole
    /// rows, rows lie one after another.
    #[test]
    fn place_matches_the_tiles_the_product_walks() {
        for (m, row_bytes, mc, mr, c) in [
            (1, 8, 8, 8, 8),
            (7, 72, 4, 8, 8),
            (100, 32, 40, 8, 8),
            (53, 24, 53, 6, 8),
            (30, 96, 16, 12, 96),
        ] {
            let layout = TileLayout::new(m, row_bytes, mc, mr, c);
            let mut seen = vec![0u8; layout.len()];
            for m0 in (0..m).step_by(layout.block_rows()) {
                let len = mc.min(m - m0);
                let ntiles = layout.tiles(len);
                let mut r0 = 0;
                for t in 0..ntiles {
                    let h = tile_rows(len, ntiles, t);
                    assert!((1..=mr).contains(&h));
                    for i in 0..h {
                        let row = m0 + r0 + i;
                        let (at, step) = layout.place(row);
                        assert_eq!((at, step), ((m0 + r0) * row_bytes + i * c, h * c), "row {row}");
                        if c == row_bytes {
                            assert_eq!(at, row * row_bytes);
                        }
                        for chunk in 0..row_bytes / c {
                            seen[at + chunk * step..][..c].iter_mut().for_each(|s| *s += 1);
                        }
                    }
                    r0 += h;
                }
                assert_eq!(r0, len);
            }
            assert!(seen.iter().all(|&s| s == 1), "m={m}: overlap or gap");
        }
    }
}
