//! NEON: not written yet (placeholder: never detected, so aarch64 runs
//! the `gemm` kernel).

use crate::kernels::isa::{Isa, Kernel, SimdOp};
use crate::kernels::packed::{PanelType, Tile};

/// The NEON instruction set.
pub(crate) struct Neon;

// SAFETY: never detected.
unsafe impl Isa for Neon {
    const KERNEL: Kernel = Kernel::Neon;
    type F32 = f32;
    const MR: usize = 1;
    const NR: usize = 0;
    const HEAD_VECS: usize = 0;

    fn detected() -> bool {
        false
    }

    unsafe fn run<O: SimdOp>(op: O) -> O::Output {
        op.eval::<Neon>()
    }

    unsafe fn tile(_: PanelType, _: usize, _: usize, _: *const u8, _: &Tile) {
        unreachable!()
    }
}
