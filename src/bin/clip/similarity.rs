//! `clip similarity`: the image-text score matrix.

use crate::common::{expand_inputs, json_floats, json_str, ModelArg, TextArgs};
use clip::{Error, Result, Tensor};
use std::path::PathBuf;

/// Output formats of `clip similarity`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimilarityFormat {
    /// A table: one row per image, one column per text.
    Table,
    /// One JSON object per image: {"path": ..., "scores": [...]} (texts in order).
    Jsonl,
}

/// Score every image against every text: CLIPModel's logits_per_image
/// (cosine similarity times the model's logit scale), or plain cosine
/// similarities with --cosine.
#[derive(clap::Args, Debug)]
pub struct SimilarityArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    text: TextArgs,
    /// Image files or directories.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<PathBuf>,
    /// Print cosine similarities instead of logits.
    #[arg(long)]
    cosine: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: SimilarityFormat,
}

/// Runs `clip similarity`.
pub fn run(args: &SimilarityArgs) -> Result<()> {
    let texts = args.text.collect()?;
    if texts.is_empty() {
        return Err(Error::invalid("give at least one --text or --text-file"));
    }
    let files = expand_inputs(&args.images)?;
    let pipeline = args.model.load()?;
    let dim = pipeline.embedding_dim();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let text_features = pipeline.encode_texts(&refs)?;
    let mut ok_paths = Vec::new();
    let mut rows = Vec::new();
    for (path, r) in files.iter().zip(pipeline.encode_image_files(&files, |_| {})) {
        match r {
            Ok(v) => {
                ok_paths.push(path.display().to_string());
                rows.extend(v);
            }
            Err(e) => eprintln!("warning: skipped {}: {e}", path.display()),
        }
    }
    if ok_paths.is_empty() {
        return Err(Error::format("no image could be read"));
    }
    let image_features = Tensor::new(vec![ok_paths.len(), dim], rows)?;
    let mut scores = pipeline.model().logits_from_features(&image_features, &text_features)?;
    if args.cosine {
        let scale = pipeline.model().logit_scale().exp();
        scores.data_mut().iter_mut().for_each(|v| *v /= scale);
    }
    let mut out = String::new();
    match args.format {
        SimilarityFormat::Jsonl => {
            for (p, row) in ok_paths.iter().zip(scores.rows()) {
                out.push_str(&format!(
                    "{{\"path\":{},\"scores\":{}}}\n",
                    json_str(p),
                    json_floats(row)
                ));
            }
        }
        SimilarityFormat::Table => {
            let header: Vec<String> = texts.iter().map(|t| format!("{t:?}")).collect();
            out.push_str(&format!("image\t{}\n", header.join("\t")));
            for (p, row) in ok_paths.iter().zip(scores.rows()) {
                let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
                out.push_str(&format!("{p}\t{}\n", cells.join("\t")));
            }
        }
    }
    crate::common::write_output(None, out.as_bytes())
}
