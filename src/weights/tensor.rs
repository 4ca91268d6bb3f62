//! One weight tensor, borrowed from a mapped file or owned.

use half::{bf16, f16};
use std::sync::Arc;

/// The element formats of weights: floating point, or int8 with one scale
/// per row (a quantized checkpoint, see `docs/quantized.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 8-bit integers `q`, each row `r` standing for `q * scale[r]`.
    I8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
        }
    }

    /// The safetensors name (`"F32"`, `"F16"`, `"BF16"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I8 => "I8",
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
    /// int8 elements and one scale per row (of the first dimension).
    I8 {
        /// The elements.
        q: &'a [i8],
        /// `q * scale[r]` is row `r`'s value.
        scale: &'a [f32],
    },
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
    /// For I8: the scales of the rows from `scale_row` on.
    scale: Option<Arc<[f32]>>,
    scale_row: usize,
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
                scale: None,
                scale_row: 0,
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
            // (Bytes are always aligned: handled above.)
            DType::I8 => Arc::new(Owned(raw.to_vec())),
        };
        WeightTensor {
            bytes: owned,
            mapping: None,
            byte_offset: 0,
            numel,
            dtype,
            shape,
            in_place: false,
            scale: None,
            scale_row: 0,
        }
    }

    /// An owned tensor holding `values` converted to `dtype` (for tests,
    /// benchmarks and weights built in memory).
    ///
    /// # Panics
    /// When `shape` does not match `values` or `dtype` is [`DType::I8`]
    /// (quantized tensors come from [`WeightTensor::quantized`]).
    pub fn from_f32_as(values: &[f32], shape: Vec<usize>, dtype: DType) -> Self {
        assert_eq!(values.len(), shape.iter().product::<usize>(), "shape does not match data");
        let bytes: Bytes = match dtype {
            DType::F32 => Arc::new(Owned(values.to_vec())),
            DType::F16 => Arc::new(Owned(values.iter().map(|&v| f16::from_f32(v)).collect())),
            DType::BF16 => Arc::new(Owned(values.iter().map(|&v| bf16::from_f32(v)).collect())),
            DType::I8 => panic!("from_f32_as: use WeightTensor::quantized for I8"),
        };
        WeightTensor {
            bytes,
            mapping: None,
            byte_offset: 0,
            numel: values.len(),
            dtype,
            shape,
            in_place: false,
            scale: None,
            scale_row: 0,
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

    /// An I8 tensor: this tensor's bytes (of dtype I8) with one scale per
    /// row of the first dimension.
    ///
    /// # Errors
    /// [`ErrorKind::Format`](crate::ErrorKind::Format) when the tensor is not
    /// I8 or has no rows, or `scale` does not hold one finite value per row.
    pub(crate) fn with_row_scales(mut self, scale: Vec<f32>) -> crate::Result<Self> {
        let rows = self.shape.first().copied().unwrap_or(0);
        if self.dtype != DType::I8 || self.shape.len() < 2 {
            return Err(crate::Error::format(format!(
                "row scales need a tensor of I8 rows, not {} {:?}",
                self.dtype.name(),
                self.shape
            )));
        }
        if scale.len() != rows {
            return Err(crate::Error::format(format!(
                "{} scales for {rows} rows (shape {:?})",
                scale.len(),
                self.shape
            )));
        }
        if let Some(r) = scale.iter().position(|s| !s.is_finite()) {
            return Err(crate::Error::format(format!("the scale of row {r} is not finite")));
        }
        self.scale = Some(scale.into());
        self.scale_row = 0;
        Ok(self)
    }

    /// An owned I8 tensor of `[rows, cols]` elements `q` and row scales.
    ///
    /// # Panics
    /// When the lengths do not match the shape.
    pub fn quantized(q: Vec<i8>, scale: Vec<f32>, rows: usize, cols: usize) -> Self {
        assert_eq!(q.len(), rows * cols, "shape does not match data");
        assert_eq!(scale.len(), rows, "one scale per row");
        WeightTensor {
            bytes: Arc::new(Owned(q)),
            mapping: None,
            byte_offset: 0,
            numel: rows * cols,
            dtype: DType::I8,
            shape: vec![rows, cols],
            in_place: false,
            scale: Some(scale.into()),
            scale_row: 0,
        }
    }

    /// The elements, typed.
    ///
    /// # Panics
    /// For an I8 tensor without row scales (the loader never makes one).
    pub fn view(&self) -> WeightView<'_> {
        let raw = &(*self.bytes).as_ref()
            [self.byte_offset..self.byte_offset + self.numel * self.dtype.size()];
        // Alignment was established in `new` (or the data is an aligned owned copy).
        match self.dtype {
            DType::F32 => WeightView::F32(bytemuck::cast_slice(raw)),
            DType::F16 => WeightView::F16(bytemuck::cast_slice(raw)),
            DType::BF16 => WeightView::BF16(bytemuck::cast_slice(raw)),
            DType::I8 => {
                let rows = self.shape.first().copied().unwrap_or(0);
                let scale = self.scale.as_deref().expect("an I8 tensor has row scales");
                WeightView::I8 {
                    q: bytemuck::cast_slice(raw),
                    scale: &scale[self.scale_row..self.scale_row + rows],
                }
            }
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
            scale: self.scale.clone(),
            scale_row: self.scale_row + start,
        }
    }

    /// An owned copy of a 2-D tensor, transposed (same dtype; I8, whose
    /// scales are per row, is widened to F32).
    pub(crate) fn transposed(&self) -> WeightTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        if self.dtype == DType::I8 {
            return WeightTensor::from_f32_as(&self.to_f32_vec(), vec![r, c], DType::F32)
                .transposed();
        }
        fn t<T: bytemuck::Pod>(v: &[T], r: usize, c: usize) -> Vec<T> {
            (0..c * r).map(|i| v[(i % r) * c + i / r]).collect()
        }
        let bytes: Bytes = match self.view() {
            WeightView::F32(v) => Arc::new(Owned(t(v, r, c))),
            WeightView::F16(v) => Arc::new(Owned(t(v, r, c))),
            WeightView::BF16(v) => Arc::new(Owned(t(v, r, c))),
            WeightView::I8 { .. } => unreachable!("widened above"),
        };
        WeightTensor {
            bytes,
            mapping: None,
            byte_offset: 0,
            numel: self.numel,
            dtype: self.dtype,
            shape: vec![c, r],
            in_place: false,
            scale: None,
            scale_row: 0,
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

    /// The elements widened to f32 (a copy; I8 rows times their scales).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.view() {
            WeightView::F32(v) => v.to_vec(),
            WeightView::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            WeightView::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            WeightView::I8 { q, scale } => {
                let cols = q.len().checked_div(scale.len()).unwrap_or(0);
                let mut out = vec![0.0; q.len()];
                for (r, row) in out.chunks_exact_mut(cols.max(1)).enumerate().take(scale.len()) {
                    dequantize(&q[r * cols..][..cols], scale[r], row);
                }
                out
            }
        }
    }

    /// Row `i` of a 2-D tensor widened into `out` (an embedding lookup).
    pub(crate) fn row_into(&self, i: usize, out: &mut [f32]) {
        let n = out.len();
        match self.view() {
            WeightView::F32(v) => out.copy_from_slice(&v[i * n..(i + 1) * n]),
            WeightView::F16(v) => widen_f16(&v[i * n..(i + 1) * n], out),
            WeightView::BF16(v) => widen_bf16(&v[i * n..(i + 1) * n], out),
            WeightView::I8 { q, scale } => dequantize(&q[i * n..(i + 1) * n], scale[i], out),
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

/// `q * scale` into `out`.
fn dequantize(q: &[i8], scale: f32, out: &mut [f32]) {
    for (o, &q) in out.iter_mut().zip(q) {
        *o = f32::from(q) * scale;
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
