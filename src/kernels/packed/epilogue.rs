//! What a product does with its results once a share has computed them.

use super::row_blocks::OutPtr;
use crate::config::Activation;
use crate::kernels::activation::activation_fn_on;
use crate::kernels::isa::Kernel;
use std::ops::Range;

/// What a product does with its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// `out = x W^T + b`.
    Store,
    /// `out += x W^T + b` (a residual connection).
    Accumulate,
    /// `out = act(x W^T + b)`, applied by each share to its own block
    /// right after computing it (in cache, on the product's threads), not
    /// in a separate pass over the whole output.
    Activate(Activation),
}

impl Epilogue {
    /// Whether the product adds to the output's current values.
    pub fn accumulates(self) -> bool {
        self == Epilogue::Accumulate
    }

    /// Applies the activation (if any), on `kernel`, to columns `cols` of
    /// rows `rows` of `out` (row stride `out_rs`).
    ///
    /// # Safety
    /// `out` addresses those rows and columns, and nothing else accesses
    /// them meanwhile.
    pub unsafe fn finish(
        self,
        kernel: Kernel,
        out: OutPtr,
        out_rs: usize,
        rows: Range<usize>,
        cols: Range<usize>,
    ) {
        if let Epilogue::Activate(act) = self {
            let f = activation_fn_on(kernel, act);
            for i in rows {
                f(std::slice::from_raw_parts_mut(
                    out.get().add(i * out_rs + cols.start),
                    cols.len(),
                ));
            }
        }
    }
}
