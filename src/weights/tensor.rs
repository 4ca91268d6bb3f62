//! One weight tensor, borrowed from a mapped file or owned.

use half::{bf16, f16};
use std::sync::Arc;

/// The floating-point formats the runtime computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The safetensors name (`"F32"`, `"F16"`, `"BF16"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }
}

/// Bytes that outlive every tensor borrowed from them: a file mapping, a
/// caller's buffer, or an owned aligned copy.
pub(crate) type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// An owned, aligned copy of converted data, exposed as bytes.
struct Owned<T: bytemuck::Pod>(Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for Owned<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// A typed view of a tensor's elements.
#[derive(Debug, Clone, Copy)]
pub enum WeightView<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// f16 elements.
    F16(&'a [f16]),
    /// bf16 elements.
    BF16(&'a [bf16]),
}

/// A tensor of weights: shape, dtype and where its bytes live. Cheap to clone
/// (the bytes are shared).
#[derive(Clone)]
pub struct WeightTensor {
    bytes: Bytes,
    /// The file mapping `bytes` is, when it is one (see [`Self::release_pages`]).
    mapping: Option<Arc<memmap2::Mmap>>,
    byte_offset: usize,
    numel: usize,
    dtype: DType,
    shape: Vec<usize>,
    in_place: bool,
}

impl std::fmt::Debug for WeightTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightTensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish()
    }
}

impl WeightTensor {
    /// A tensor over `bytes[byte_offset..]`. Uses the bytes in place when they
    /// are aligned for `dtype` and the machine is little-endian; otherwise
    /// copies them once into an aligned buffer.
    pub(crate) fn new(bytes: Bytes, byte_offset: usize, dtype: DType, shape: Vec<usize>) -> Self {
        let numel = shape.iter().product::<usize>();
        let raw = &(*bytes).as_ref()[byte_offset..byte_offset + numel * dtype.size()];
        let aligned = (raw.as_ptr() as usize).is_multiple_of(dtype.size());
        if aligned && cfg!(target_endian = "little") {
            return WeightTensor {
                bytes,
                mapping: None,
                byte_offset,
                numel,
                dtype,
                shape,
                in_place: true,
            };
        }
        let owned: Bytes = match dtype {
            DType::F32 => Arc::new(Owned(
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            )),
            DType::F16 => Arc::new(Owned(
                raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect(),
            )),
            DType::BF16 => Arc::new(Owned(
                raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]])).collect(),
            )),
        };
        WeightTensor {
            bytes: owned,
            mapping: None,
            byte_offset: 0,
            numel,
            dtype,
            shape,
            in_place: false,
        }
    }

    /// An owned tensor holding `values` converted to `dtype` (for tests,
    /// benchmarks and weights built in memory).
    pub fn from_f32_as(values: &[f32], shape: Vec<usize>, dtype: DType) -> Self {
        assert_eq!(values.len(), shape.iter().product::<usize>(), "shape does not match data");
        let bytes: Bytes = match dtype {
            DType::F32 => Arc::new(Owned(values.to_vec())),
            DType::F16 => Arc::new(Owned(values.iter().map(|&v| f16::from_f32(v)).collect())),
            DType::BF16 => Arc::new(Owned(values.iter().map(|&v| bf16::from_f32(v)).collect())),
        };
        WeightTensor {
            bytes,
            mapping: None,
            byte_offset: 0,
            numel: values.len(),
            dtype,
            shape,
            in_place: false,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The elements, typed.
    pub fn view(&self) -> WeightView<'_> {
        let raw = &(*self.bytes).as_ref()
            [self.byte_offset..self.byte_offset + self.numel * self.dtype.size()];
        // Alignment was established in `new` (or the data is an aligned owned copy).
        match self.dtype {
            DType::F32 => WeightView::F32(bytemuck::cast_slice(raw)),
            DType::F16 => WeightView::F16(bytemuck::cast_slice(raw)),
            DType::BF16 => WeightView::BF16(bytemuck::cast_slice(raw)),
        }
    }

    /// Rows `start..start + count` along the first axis (no copy), e.g. the
    /// query third of a fused `in_proj_weight`.
    pub(crate) fn rows(&self, start: usize, count: usize) -> WeightTensor {
        let row = self.shape.iter().skip(1).product::<usize>();
        let mut shape = self.shape.clone();
        shape[0] = count;
        WeightTensor {
            bytes: self.bytes.clone(),
            mapping: self.mapping.clone(),
            byte_offset: self.byte_offset + start * row * self.dtype.size(),
            numel: count * row,
            dtype: self.dtype,
            shape,
            in_place: self.in_place,
        }
    }

    /// An owned copy of a 2-D tensor, transposed (same dtype).
    pub(crate) fn transposed(&self) -> WeightTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        fn t<T: bytemuck::Pod>(v: &[T], r: usize, c: usize) -> Vec<T> {
            (0..c * r).map(|i| v[(i % r) * c + i / r]).collect()
        }
        let bytes: Bytes = match self.view() {
            WeightView::F32(v) => Arc::new(Owned(t(v, r, c))),
            WeightView::F16(v) => Arc::new(Owned(t(v, r, c))),
            WeightView::BF16(v) => Arc::new(Owned(t(v, r, c))),
        };
        WeightTensor {
            bytes,
            mapping: None,
            byte_offset: 0,
            numel: self.numel,
            dtype: self.dtype,
            shape: vec![c, r],
            in_place: false,
        }
    }

    /// Marks this tensor as coming from `mapping` (the file mapping its
    /// bytes are), so [`Self::release_pages`] can act.
    pub(crate) fn with_mapping(mut self, mapping: Arc<memmap2::Mmap>) -> Self {
        if self.in_place {
            self.mapping = Some(mapping);
        }
        self
    }

    /// Drops this tensor's pages of the file mapping from the process's
    /// resident memory, once a copy in another layout is all that will be
    /// read (the packed GEMM panels). Only whole pages inside the tensor are
    /// released; reading them again later is correct (they are read back
    /// from the page cache or the file). Does nothing for tensors not mapped
    /// from a file.
    pub(crate) fn release_pages(&self) {
        let Some(map) = &self.mapping else { return };
        const PAGE: usize = 4096;
        let start = self.byte_offset.next_multiple_of(PAGE);
        let end = (self.byte_offset + self.nbytes()) / PAGE * PAGE;
        if end <= start {
            return;
        }
        // The mapping's base is page aligned, so offsets aligned to 4 KiB are
        // page aligned for the kernel too (a larger page size only makes the
        // call fail, which is harmless: nothing is released).
        // SAFETY: the mapping is read-only and private (`Mmap::map`) and never
        // written, so MADV_DONTNEED only unmaps pages whose contents stay
        // available from the file: later reads through this or any other
        // tensor see the same bytes. The range lies inside the mapping.
        #[cfg(unix)]
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }

    /// The elements widened to f32 (a copy).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.view() {
            WeightView::F32(v) => v.to_vec(),
            WeightView::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            WeightView::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Row `i` of a 2-D tensor widened into `out` (an embedding lookup).
    pub(crate) fn row_into(&self, i: usize, out: &mut [f32]) {
        let n = out.len();
        match self.view() {
            WeightView::F32(v) => out.copy_from_slice(&v[i * n..(i + 1) * n]),
            WeightView::F16(v) => widen_f16(&v[i * n..(i + 1) * n], out),
            WeightView::BF16(v) => widen_bf16(&v[i * n..(i + 1) * n], out),
        }
    }

    /// True when the elements are read in place from a file mapping or a
    /// caller's buffer rather than from a copy made at load time.
    pub fn is_in_place(&self) -> bool {
        self.in_place
    }

    /// Bytes the elements occupy.
    pub fn nbytes(&self) -> usize {
        self.numel * self.dtype.size()
    }
}

/// Widens half-precision values to f32 with the vectorised conversions of
/// the `half` crate (F16C on x86-64 when the CPU has it, checked at run
/// time); exact.
pub(crate) fn widen_f16(src: &[half::f16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst)
}

/// As [`widen_f16`] for bfloat16.
pub(crate) fn widen_bf16(src: &[half::bf16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst)
}
