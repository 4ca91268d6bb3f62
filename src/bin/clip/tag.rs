//! `clip tag`: offline zero-shot tagging of images with a list of labels.

use crate::common::{expand_inputs, json_f32, json_str, progress, read_lines, ModelArg};
use clip::{Error, Pipeline, Result, Tensor};
use std::path::{Path, PathBuf};

/// Output formats of `clip tag`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagFormat {
    /// One line per image: its best labels with percentages.
    Table,
    /// One JSON object per image: {"path": ..., "labels": [{"label": ..., "score": ...}, ...]}.
    Jsonl,
    /// `path,label,score` rows with a header.
    Csv,
}

/// Tag images with the labels that fit them best (zero-shot: any labels, no
/// training). Scores are the softmax over the labels of CLIP's logits;
/// several --template prompts are averaged as in the CLIP paper.
#[derive(clap::Args, Debug)]
pub struct TagArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Comma-separated labels, e.g. --labels cat,dog,car.
    #[arg(
        long,
        value_name = "A,B,C",
        value_delimiter = ',',
        required_unless_present = "labels_file"
    )]
    labels: Vec<String>,
    /// A file with one label per line (empty lines ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "labels")]
    labels_file: Option<PathBuf>,
    /// Image files or directories (searched recursively for images).
    #[arg(value_name = "IMAGE_OR_DIR", required = true)]
    inputs: Vec<PathBuf>,
    /// A prompt template with {} for the label (repeatable; default: a small
    /// ensemble such as "a photo of a {}.").
    #[arg(long = "template", value_name = "TEMPLATE")]
    templates: Vec<String>,
    /// Show at most K labels per image.
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// Show only labels scoring at least P (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    threshold: f32,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: TagFormat,
    /// Do not read or write the label-embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// Runs `clip tag`.
pub fn run(args: &TagArgs, quiet: bool) -> Result<()> {
    let labels: Vec<String> = match &args.labels_file {
        Some(f) => read_lines(f)?
            .into_iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => {
            args.labels.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
        }
    };
    if labels.is_empty() {
        return Err(Error::invalid("no labels given"));
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(Error::invalid("--threshold must be between 0 and 1"));
    }
    let templates: Vec<&str> = if args.templates.is_empty() {
        clip::DEFAULT_TEMPLATES.to_vec()
    } else {
        args.templates.iter().map(String::as_str).collect()
    };
    let files = expand_inputs(&args.inputs)?;
    let pipeline = args.model.load()?;
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let label_embeds = if args.no_cache {
        pipeline.label_embeddings(&label_refs, &templates)?
    } else {
        cached_label_embeddings(&pipeline, &args.model, &label_refs, &templates)?
    };
    let bar = progress(files.len(), quiet, "tagging");
    let results = pipeline.encode_image_files(&files, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let dim = pipeline.embedding_dim();
    let mut out = String::new();
    if args.format == TagFormat::Csv {
        out.push_str("path,label,score\n");
    }
    let mut failures = 0;
    for (path, r) in files.iter().zip(results) {
        let features = match r {
            Ok(v) => Tensor::new(vec![1, dim], v)?,
            Err(e) => {
                failures += 1;
                eprintln!("warning: skipped {}: {e}", path.display());
                continue;
            }
        };
        let probs = pipeline.zero_shot(&features, &label_embeds)?;
        let mut ranked: Vec<(usize, f32)> = probs.data().iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(args.top_k);
        ranked.retain(|&(_, p)| p >= args.threshold);
        format_row(&mut out, args.format, path, &labels, &ranked);
    }
    if failures > 0 && failures == files.len() {
        return Err(Error::format(format!("none of the {failures} image(s) could be read")));
    }
    crate::common::write_output(None, out.as_bytes())?;
    if failures > 0 {
        eprintln!("warning: {failures} file(s) skipped");
    }
    Ok(())
}

fn format_row(
    out: &mut String,
    format: TagFormat,
    path: &Path,
    labels: &[String],
    ranked: &[(usize, f32)],
) {
    let p = path.display().to_string();
    match format {
        TagFormat::Table => {
            let items: Vec<String> =
                ranked.iter().map(|&(i, s)| format!("{} {:.1}%", labels[i], s * 100.0)).collect();
            out.push_str(&format!("{p}: {}\n", items.join(", ")));
        }
        TagFormat::Jsonl => {
            let items: Vec<String> = ranked
                .iter()
                .map(|&(i, s)| {
                    format!("{{\"label\":{},\"score\":{}}}", json_str(&labels[i]), json_f32(s))
                })
                .collect();
            out.push_str(&format!(
                "{{\"path\":{},\"labels\":[{}]}}\n",
                json_str(&p),
                items.join(",")
            ));
        }
        TagFormat::Csv => {
            for &(i, s) in ranked {
                out.push_str(&format!("{},{},{}\n", csv_field(&p), csv_field(&labels[i]), s));
            }
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// 64-bit FNV-1a, stable across runs and Rust versions (a cache key).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &b in part.iter().chain(&[0xffu8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CLIP_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("clip"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("clip"))
}

/// What identifies a model's weights for the cache: its files' sizes and
/// modification times, or the library version for the built-in model.
fn model_identity(model: &ModelArg) -> String {
    let id = match &model.model {
        None => format!("builtin-{}", env!("CARGO_PKG_VERSION")),
        Some(dir) => {
            let mut id =
                std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()).display().to_string();
            if let Ok(entries) = std::fs::read_dir(dir) {
                let mut files: Vec<_> = entries.filter_map(|e| e.ok()).collect();
                files.sort_by_key(|e| e.file_name());
                for e in files {
                    if let Ok(m) = e.metadata() {
                        let mtime = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                        id.push_str(&format!("|{:?}:{}:{:?}", e.file_name(), m.len(), mtime));
                    }
                }
            }
            id
        }
    };
    id + model.precision_tag()
}

/// Label embeddings, from the cache when the same model, labels and
/// templates were embedded before (`$CLIP_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/clip` or `~/.cache/clip`). A cache that cannot be read
/// or written is ignored.
fn cached_label_embeddings(
    pipeline: &Pipeline,
    model: &ModelArg,
    labels: &[&str],
    templates: &[&str],
) -> Result<Tensor> {
    let identity = model_identity(model);
    let mut parts: Vec<&[u8]> = vec![identity.as_bytes(), b"templates"];
    parts.extend(templates.iter().map(|t| t.as_bytes()));
    parts.push(b"labels");
    parts.extend(labels.iter().map(|l| l.as_bytes()));
    let key = fnv1a(&parts);
    let dim = pipeline.embedding_dim();
    let path = cache_dir().map(|d| d.join(format!("labels-{key:016x}.npy")));
    if let Some(p) = &path {
        if let Some(t) = std::fs::read(p)
            .ok()
            .and_then(|b| Tensor::from_npy_bytes(&b).ok())
            .filter(|t| t.shape() == [labels.len(), dim])
        {
            return Ok(t);
        }
    }
    let t = pipeline.label_embeddings(labels, templates)?;
    if let Some(p) = &path {
        if p.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok()) {
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, t.to_npy_bytes()).is_ok() {
                let _ = std::fs::rename(&tmp, p);
            }
        }
    }
    Ok(t)
}
