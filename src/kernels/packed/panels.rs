//! Weight panels: a weight matrix `[out, in]` (or stacked matrices) laid
//! out `[panel][in][NR]`, `NR` output features a panel (the instruction
//! set's tile width), 64-byte aligned and zero padded, in the weights' own
//! dtype; and the loads that widen a panel's 16-bit elements to f32.

use crate::kernels::isa::{Isa, SimdOp};
use crate::kernels::linear_product::Mat;
use crate::kernels::simd::F32Vec;
use rayon::prelude::*;

/// The element type of packed panels (the weights' own dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanelType {
    F32,
    F16,
    BF16,
}

impl PanelType {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            PanelType::F32 => 4,
            PanelType::F16 | PanelType::BF16 => 2,
        }
    }
}

/// Panel element types as const parameters of the micro-kernels.
pub(crate) const DT_F32: u8 = 0;
pub(crate) const DT_F16: u8 = 1;
pub(crate) const DT_BF16: u8 = 2;

/// Panel element `i` onwards (of type `DT`, at `p`) as a vector of f32.
///
/// # Safety
/// The CPU has `V`'s instruction set; `p` addresses `i + V::LANES`
/// elements of type `DT`.
#[inline(always)]
pub(crate) unsafe fn load_panel<V: F32Vec, const DT: u8>(p: *const u8, i: usize) -> V {
    match DT {
        DT_F32 => V::load(p.cast::<f32>().add(i)),
        DT_F16 => V::load_f16(p.cast::<u16>().add(i)),
        _ => V::load_bf16(p.cast::<u16>().add(i)),
    }
}

/// Widens `dst.len()` (a multiple of the vector's lanes) panel elements of
/// type `dtype` at `src` into `dst`, as a [`SimdOp`].
pub(crate) struct Widen<'a> {
    pub dtype: PanelType,
    pub src: *const u8,
    pub dst: &'a mut [f32],
}

impl SimdOp for Widen<'_> {
    type Output = ();

    /// # Safety
    /// As [`SimdOp::eval`], and `src` addresses `dst.len()` elements.
    #[inline(always)]
    unsafe fn eval<K: Isa>(self) {
        #[inline(always)]
        unsafe fn widen<V: F32Vec, const DT: u8>(src: *const u8, dst: &mut [f32]) {
            for (i, d) in dst.chunks_exact_mut(V::LANES).enumerate() {
                load_panel::<V, DT>(src, i * V::LANES).store(d.as_mut_ptr());
            }
        }
        match self.dtype {
            PanelType::F32 => widen::<K::F32, DT_F32>(self.src, self.dst),
            PanelType::F16 => widen::<K::F32, DT_F16>(self.src, self.dst),
            PanelType::BF16 => widen::<K::F32, DT_BF16>(self.src, self.dst),
        }
    }
}

/// Writes `rows` (`[n][k]`) as panels `[n / nr][k][nr]`, zero padded, in
/// parallel over panels.
pub(crate) fn pack_panels<T: bytemuck::Pod + Send + Sync>(
    rows: &[&[T]],
    k: usize,
    nr: usize,
    out: &mut [T],
) {
    out.par_chunks_mut(k * nr).enumerate().for_each(|(p, panel)| {
        let mine = &rows[p * nr..rows.len().min((p + 1) * nr)];
        for (kk, dst) in panel.chunks_exact_mut(nr).enumerate() {
            for (d, row) in dst.iter_mut().zip(mine) {
                *d = row[kk];
            }
        }
    });
}

/// Memory for packed panels: a private anonymous mapping (page aligned,
/// zero filled by the OS), asked to be backed by transparent huge pages on
/// Linux. Packing touches every byte once, and with 4 KiB pages the page
/// faults alone cost more than the copy (86,000 faults for B/32 in F32).
pub(crate) struct PanelMemory(Option<memmap2::MmapMut>);

impl PanelMemory {
    /// `None` if the OS refuses the mapping (the caller falls back to `gemm`).
    pub(crate) fn zeroed(bytes: usize) -> Option<Self> {
        if bytes == 0 {
            return Some(PanelMemory(None));
        }
        let map = memmap2::MmapMut::map_anon(bytes).ok()?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Some(PanelMemory(Some(map)))
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.0.as_ref().map_or(std::ptr::NonNull::dangling().as_ptr(), |m| m.as_ptr())
    }

    pub(crate) fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        match self.0.as_mut() {
            Some(m) => bytemuck::cast_slice_mut(&mut m[..]),
            None => &mut [],
        }
    }
}

/// What the f32 panels and the int8 panels of stacked parts share: the
/// common input size, the total output size, the number of `nr`-wide
/// panels and the biases.
pub(crate) struct Stack {
    pub k: usize,
    pub n: usize,
    pub panels: usize,
    /// `panels * nr` biases (zero where a part has none, and in the padding).
    pub bias: Vec<f32>,
    pub has_bias: bool,
}

impl Stack {
    /// `None` when `parts` is empty or their input sizes differ.
    pub fn of(parts: &[(&Mat, Option<&[f32]>)], nr: usize) -> Option<Stack> {
        let k = parts.first()?.0.in_features;
        if parts.iter().any(|(m, _)| m.in_features != k) {
            return None;
        }
        let n: usize = parts.iter().map(|(m, _)| m.out_features).sum();
        let panels = n.div_ceil(nr);
        let mut bias = vec![0.0f32; panels * nr];
        let mut row = 0;
        for (m, b) in parts {
            if let Some(b) = b {
                bias[row..row + m.out_features].copy_from_slice(b);
            }
            row += m.out_features;
        }
        let has_bias = parts.iter().any(|(_, b)| b.is_some());
        Some(Stack { k, n, panels, bias, has_bias })
    }
}

/// Once the parts are packed, their panels are all that will be read: the
/// mapped pages of the originals can go.
pub(crate) fn release_pages(parts: &[(&Mat, Option<&[f32]>)]) {
    for (m, _) in parts {
        m.weight.release_pages();
    }
}
