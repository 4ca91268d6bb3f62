//! Opening safetensors files: one file, a sharded checkpoint, or buffers in memory.

use super::tensor::{Bytes, DType, WeightTensor};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype as StDtype, SafeTensorError};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a named tensor's bytes are.
#[derive(Clone)]
struct Entry {
    source: usize,
    dtype: StDtype,
    shape: Vec<usize>,
    byte_offset: usize,
}

/// The tensors of one checkpoint, from one or more safetensors files or
/// buffers, addressed by name.
pub struct WeightStore {
    sources: Vec<(String, Bytes)>,
    /// The file mapping behind each source, if it is one.
    mappings: Vec<Option<Arc<memmap2::Mmap>>>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WeightStore")
            .field("sources", &names)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

fn describe(err: SafeTensorError, len: usize) -> String {
    match err {
        SafeTensorError::HeaderTooSmall => {
            format!("file is too small to be safetensors ({len} bytes; truncated?)")
        }
        SafeTensorError::InvalidHeaderLength => format!(
            "header length exceeds the file size ({len} bytes; truncated or not a safetensors file?)"
        ),
        SafeTensorError::HeaderTooLarge => "header is larger than safetensors allows".into(),
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the tensor table does not match the data ({len} bytes in the file): truncated, or offsets point past the end"
        ),
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor \"{name}\" has data offsets that overlap, leave gaps or run backwards")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".into()
        }
        SafeTensorError::InvalidHeader(e) => format!("header is not UTF-8: {e}"),
        SafeTensorError::InvalidHeaderDeserialization(e) => format!("header is not valid: {e}"),
        other => format!("invalid safetensors data: {other:?}"),
    }
}

impl WeightStore {
    /// An empty store.
    fn empty() -> Self {
        WeightStore { sources: Vec::new(), mappings: Vec::new(), entries: HashMap::new() }
    }

    /// Adds the tensors of one safetensors buffer. Names already present are
    /// an error (a sharded checkpoint must not repeat a tensor).
    fn add(&mut self, name: String, bytes: Bytes) -> Result<()> {
        self.add_mapped(name, bytes, None)
    }

    fn add_mapped(
        &mut self,
        name: String,
        bytes: Bytes,
        mapping: Option<Arc<memmap2::Mmap>>,
    ) -> Result<()> {
        let buf: &[u8] = (*bytes).as_ref();
        let (header_len, metadata) = SafeTensors::read_metadata(buf)
            .map_err(|e| Error::format(format!("{name}: {}", describe(e, buf.len()))))?;
        let data_start = 8 + header_len;
        let source = self.sources.len();
        for (tensor, info) in metadata.tensors() {
            let entry = Entry {
                source,
                dtype: info.dtype,
                shape: info.shape.clone(),
                byte_offset: data_start + info.data_offsets.0,
            };
            if self.entries.insert(tensor.clone(), entry).is_some() {
                return Err(Error::format(format!("{name}: tensor \"{tensor}\" appears twice")));
            }
        }
        self.sources.push((name, bytes));
        self.mappings.push(mapping);
        Ok(())
    }

    /// Maps one safetensors file.
    pub fn open_file(path: &Path) -> Result<Self> {
        let mut store = Self::empty();
        store.add_file(path)?;
        Ok(store)
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let (bytes, mapping): (Bytes, _) = if len == 0 {
            (Arc::new(Vec::<u8>::new()), None)
        } else {
            // SAFETY: the mapping is read-only and private to this process. Its
            // contents are treated as untrusted bytes and fully validated;
            // the one thing mapping cannot protect against is another process
            // truncating or rewriting the file while it is mapped (the
            // documented contract of every mmap-based loader, safetensors'
            // own included): model files must not be modified while loaded.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let map = Arc::new(map);
            (map.clone(), Some(map))
        };
        self.add_mapped(path.display().to_string(), bytes, mapping)
    }

    /// Maps several files (shards) into one store.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut store = Self::empty();
        for p in paths {
            store.add_file(p)?;
        }
        Ok(store)
    }

    /// Opens the weights of a model directory: the shards listed by
    /// `model.safetensors.index.json` if present, else `model.safetensors`,
    /// else the only `*.safetensors` file.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::open_sharded(&index);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::open_file(&single);
        }
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        let with_ext = |exts: &[&str]| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = files
                .iter()
                .filter(|p| p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)))
                .cloned()
                .collect();
            v.sort();
            v
        };
        let found = with_ext(&["safetensors"]);
        match found.len() {
            1 => Self::open_file(&found[0]),
            0 => {
                // open_clip's and transformers' older hub files are pickles.
                let pickle = with_ext(&["bin", "pt", "pth"]).into_iter().next().map_or(
                    String::new(),
                    |p| {
                        format!(
                            "; {} is a PyTorch pickle, which is not read (loading one can run code): convert it to safetensors",
                            p.display()
                        )
                    },
                );
                Err(Error::new(
                    crate::ErrorKind::Io,
                    format!(
                        "{}: no model.safetensors (or other *.safetensors file) found{pickle}",
                        dir.display()
                    ),
                ))
            }
            _ => Err(Error::format(format!(
                "{}: several *.safetensors files and no model.safetensors or model.safetensors.index.json to choose between them",
                dir.display()
            ))),
        }
    }

    /// Opens a sharded checkpoint from its `*.safetensors.index.json`.
    pub fn open_sharded(index: &Path) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let parsed: Index = serde_json::from_str(&text)
            .map_err(|e| Error::format(format!("{}: {e}", index.display())))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<&String> = parsed.weight_map.values().collect();
        shards.sort();
        shards.dedup();
        let mut store = Self::empty();
        for shard in shards {
            if shard.contains('/') || shard.contains('\\') || shard == ".." {
                return Err(Error::format(format!(
                    "{}: shard name \"{shard}\" must be a file name in the same directory",
                    index.display()
                )));
            }
            store.add_file(&dir.join(shard))?;
        }
        for (tensor, shard) in &parsed.weight_map {
            let in_shard = store.entries.get(tensor).map(|e| &store.sources[e.source].0);
            if !in_shard.is_some_and(|s| s.ends_with(shard.as_str())) {
                return Err(Error::format(format!(
                    "{}: tensor \"{tensor}\" is listed in {shard} but not found there",
                    index.display()
                )));
            }
        }
        Ok(store)
    }

    /// A store over safetensors bytes already in memory (used in place when aligned).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        Self::from_shared_bytes(name, Arc::new(bytes))
    }

    /// A store over shared bytes (a caller's buffer kept alive by the `Arc`).
    pub fn from_shared_bytes(
        name: &str,
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    ) -> Result<Self> {
        let mut store = Self::empty();
        store.add(name.to_string(), bytes)?;
        Ok(store)
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(|s| s.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The files or buffers the tensors come from.
    pub fn sources(&self) -> Vec<&str> {
        self.sources.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Total bytes of the underlying files or buffers.
    pub fn total_bytes(&self) -> usize {
        self.sources.iter().map(|(_, b)| (**b).as_ref().len()).sum()
    }

    /// The tensor `name` as stored: its dtype, shape and bytes (any dtype).
    pub(crate) fn raw(&self, name: &str) -> Option<(StDtype, &[usize], &[u8])> {
        let e = self.entries.get(name)?;
        let buf: &[u8] = (*self.sources[e.source].1).as_ref();
        let len = e.shape.iter().product::<usize>() * e.dtype.bitsize().div_ceil(8);
        Some((e.dtype, &e.shape, &buf[e.byte_offset..e.byte_offset + len]))
    }

    /// Whether the checkpoint is quantized: it holds I8 tensors (with their
    /// row scales, see `docs/quantized.md`).
    pub fn is_quantized(&self) -> bool {
        self.entries.values().any(|e| e.dtype == StDtype::I8)
    }

    /// The tensor `name`, or `Ok(None)` when absent. An I8 tensor comes
    /// with its row scales, the tensor `{name}_scale` (F32, F16 or BF16, one
    /// per row). Other dtypes than F32, F16, BF16 and I8 are an
    /// [`ErrorKind::Unsupported`](crate::ErrorKind) error; an I8 tensor
    /// without valid scales is an [`ErrorKind::Format`](crate::ErrorKind)
    /// error.
    pub fn get(&self, name: &str) -> Result<Option<WeightTensor>> {
        let Some(e) = self.entries.get(name) else { return Ok(None) };
        let source = &self.sources[e.source].0;
        let dtype = match e.dtype {
            StDtype::F32 => DType::F32,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
            StDtype::I8 => DType::I8,
            other => {
                return Err(Error::unsupported(format!(
                    "{source}: tensor \"{name}\" has dtype {other:?}; supported dtypes are F32, \
                     F16, BF16, and I8 with row scales"
                )))
            }
        };
        let bytes = self.sources[e.source].1.clone();
        let mut tensor = WeightTensor::new(bytes, e.byte_offset, dtype, e.shape.clone());
        if dtype == DType::I8 {
            let scale_name = format!("{name}_scale");
            let bad = |why: String| Error::format(format!("{source}: I8 tensor \"{name}\": {why}"));
            let scale = match self.get(&scale_name)? {
                None => return Err(bad(format!("its row scales \"{scale_name}\" are missing"))),
                Some(s) if s.dtype() == DType::I8 => {
                    return Err(bad(format!("its row scales \"{scale_name}\" are I8, not floats")))
                }
                Some(s) if s.shape() != [e.shape.first().copied().unwrap_or(0)] => {
                    return Err(bad(format!(
                        "its row scales \"{scale_name}\" have shape {:?}, expected [{}]",
                        s.shape(),
                        e.shape.first().copied().unwrap_or(0)
                    )))
                }
                Some(s) => s.to_f32_vec(),
            };
            tensor = tensor.with_row_scales(scale).map_err(|err| bad(err.message().to_string()))?;
        }
        Ok(Some(match &self.mappings[e.source] {
            Some(map) => tensor.with_mapping(map.clone()),
            None => tensor,
        }))
    }
}
