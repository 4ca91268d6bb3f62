//! `clip index` / `clip search`: image retrieval by text.
//!
//! An index is a directory holding two files:
//! - `embeddings.npy`: float32 `(N, D)`, L2-normalised image embeddings;
//! - `index.json`: `{"format": "clip-index", "version": 1, "model": ...,
//!   "model_dir": ... | null, "model_identity": ..., "dim": D, "entries":
//!   [{"path": ..., "size": bytes, "mtime": seconds}, ...]}`, one entry per
//!   row of `embeddings.npy`, in the same order.

use crate::common::{expand_inputs, json_f32, json_str, progress, ModelArg};
use clip::{Error, ErrorKind, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Entry {
    path: String,
    size: u64,
    mtime: u64,
}

#[derive(Serialize, Deserialize, Debug)]
struct IndexFile {
    format: String,
    version: u32,
    model: String,
    model_dir: Option<PathBuf>,
    model_identity: String,
    dim: usize,
    entries: Vec<Entry>,
}

/// Embed every image of the given files and folders into an index for
/// `clip search`. Re-running it updates only new or changed files; files
/// that cannot be decoded are reported and skipped.
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The index directory to create or update.
    #[arg(long, value_name = "INDEX")]
    out: PathBuf,
    /// Image files or directories (searched recursively for images).
    #[arg(value_name = "IMAGE_OR_DIR", required = true)]
    inputs: Vec<PathBuf>,
}

/// Output formats of `clip search`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchFormat {
    /// `score  path` lines, best first.
    Table,
    /// One JSON object per hit: {"path": ..., "score": ...}.
    Jsonl,
}

/// Find the indexed images that best match a text (cosine similarity).
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The index directory made by `clip index`.
    #[arg(long, value_name = "INDEX")]
    index: PathBuf,
    /// Model directory (default: the one the index was built with).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Embed the query in int8 (see `clip index --int8`).
    #[arg(long)]
    int8: bool,
    /// The query.
    #[arg(value_name = "QUERY")]
    query: String,
    /// Number of results.
    #[arg(long, value_name = "K", default_value_t = 10)]
    top_k: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: SearchFormat,
}

fn stat(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some((m.len(), mtime))
}

fn identity(model: &ModelArg) -> String {
    let id = match &model.model {
        None => format!("builtin-{}", env!("CARGO_PKG_VERSION")),
        Some(d) => std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()).display().to_string(),
    };
    id + model.precision_tag()
}

fn load_index(dir: &Path) -> Result<(IndexFile, Tensor)> {
    let meta_path = dir.join("index.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: IndexFile = serde_json::from_str(&text)
        .map_err(|e| Error::format(format!("{}: not a clip index: {e}", meta_path.display())))?;
    if meta.format != "clip-index" || meta.version != 1 {
        return Err(Error::format(format!("{}: unsupported index format", meta_path.display())));
    }
    let npy = dir.join("embeddings.npy");
    let bytes = std::fs::read(&npy).map_err(|e| Error::io(&npy, e))?;
    let emb = Tensor::from_npy_bytes(&bytes).map_err(|e| e.context(npy.display()))?;
    if emb.shape() != [meta.entries.len(), meta.dim] {
        return Err(Error::format(format!(
            "{}: shape {:?} does not match index.json ({} entries of {} dims)",
            npy.display(),
            emb.shape(),
            meta.entries.len(),
            meta.dim
        )));
    }
    Ok((meta, emb))
}

/// Runs `clip index`.
pub fn run_index(args: &IndexArgs, quiet: bool) -> Result<()> {
    let files = expand_inputs(&args.inputs)?;
    let pipeline = args.model.load()?;
    let dim = pipeline.embedding_dim();
    let model_identity = identity(&args.model);
    // Reuse rows of unchanged files from an existing index of the same model.
    let mut known: HashMap<String, (Entry, Vec<f32>)> = HashMap::new();
    let mut kept_order: Vec<String> = Vec::new();
    if args.out.join("index.json").exists() {
        let (meta, emb) = load_index(&args.out)?;
        if meta.model_identity == model_identity && meta.dim == dim {
            for (e, row) in meta.entries.into_iter().zip(emb.rows()) {
                if Path::new(&e.path).exists() {
                    kept_order.push(e.path.clone());
                    known.insert(e.path.clone(), (e, row.to_vec()));
                }
            }
        } else if !quiet {
            eprintln!("note: the index was built with another model; re-embedding everything");
        }
    }
    let mut todo: Vec<(PathBuf, Entry)> = Vec::new();
    for f in &files {
        let key = f.display().to_string();
        let Some((size, mtime)) = stat(f) else { continue };
        let entry = Entry { path: key.clone(), size, mtime };
        if known.get(&key).is_some_and(|(e, _)| *e == entry) {
            continue;
        }
        todo.push((f.clone(), entry));
    }
    let bar = progress(todo.len(), quiet, "indexing");
    let paths: Vec<&PathBuf> = todo.iter().map(|(p, _)| p).collect();
    let results = pipeline.encode_image_files(&paths, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let (mut added, mut skipped) = (0, 0);
    for ((path, entry), r) in todo.into_iter().zip(results) {
        match r {
            Ok(mut v) => {
                clip::kernels::l2_normalize_rows(&mut v, dim);
                if !known.contains_key(&entry.path) {
                    kept_order.push(entry.path.clone());
                }
                known.insert(entry.path.clone(), (entry, v));
                added += 1;
            }
            Err(e) => {
                skipped += 1;
                eprintln!("warning: skipped {}: {e}", path.display());
            }
        }
    }
    let mut entries = Vec::with_capacity(kept_order.len());
    let mut data = Vec::with_capacity(kept_order.len() * dim);
    for p in &kept_order {
        if let Some((e, row)) = known.remove(p) {
            entries.push(e);
            data.extend(row);
        }
    }
    let total = entries.len();
    let meta = IndexFile {
        format: "clip-index".into(),
        version: 1,
        model: args.model.describe(),
        model_dir: args
            .model
            .model
            .as_ref()
            .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())),
        model_identity,
        dim,
        entries,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot create {}: {e}", args.out.display()))
    })?;
    let emb = Tensor::new(vec![total, dim], data)?;
    write_atomic(&args.out.join("embeddings.npy"), &emb.to_npy_bytes())?;
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::internal(e.to_string()))?;
    write_atomic(&args.out.join("index.json"), &json)?;
    if !quiet {
        eprintln!(
            "indexed {total} image(s) in {} ({added} new or changed, {skipped} skipped)",
            args.out.display()
        );
    }
    if skipped > 0 && added == 0 && total == 0 {
        return Err(Error::format("no image could be indexed"));
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display())))
}

/// Runs `clip search`.
pub fn run_search(args: &SearchArgs) -> Result<()> {
    let (meta, emb) = load_index(&args.index)?;
    let model = ModelArg { model: args.model.clone().or(meta.model_dir.clone()), int8: args.int8 };
    let pipeline = model.load()?;
    if pipeline.embedding_dim() != meta.dim {
        return Err(Error::invalid(format!(
            "the model gives {}-dim embeddings but the index holds {}-dim ones (built with {})",
            pipeline.embedding_dim(),
            meta.dim,
            meta.model
        )));
    }
    let mut q = pipeline.encode_texts(&[args.query.as_str()])?;
    clip::kernels::l2_normalize_rows(q.data_mut(), meta.dim);
    let mut hits: Vec<(usize, f32)> = emb
        .rows()
        .map(|r| r.iter().zip(q.data()).map(|(a, b)| a * b).sum::<f32>())
        .enumerate()
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits.truncate(args.top_k);
    let mut out = String::new();
    for (i, s) in hits {
        let p = &meta.entries[i].path;
        match args.format {
            SearchFormat::Table => out.push_str(&format!("{s:.4}  {p}\n")),
            SearchFormat::Jsonl => {
                out.push_str(&format!("{{\"path\":{},\"score\":{}}}\n", json_str(p), json_f32(s)))
            }
        }
    }
    crate::common::write_output(None, out.as_bytes())
}
