//! `clip embed`: text or image embeddings as JSON lines or `.npy`.

use crate::common::{
    expand_inputs, json_floats, json_str, progress, write_output, ModelArg, TextArgs,
};
use clip::{Error, Result, Tensor};
use std::path::PathBuf;

/// Output formats of `clip embed`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedFormat {
    /// One JSON object per input: {"input": ..., "embedding": [...]}.
    Jsonl,
    /// A little-endian float32 (N, D) array, rows in input order.
    Npy,
}

/// Embed texts (`--text`, `--text-file`) or image files with the model's
/// projection heads (`get_text_features` / `get_image_features`).
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    text: TextArgs,
    /// Image files or directories (searched recursively for images).
    #[arg(value_name = "IMAGE", conflicts_with_all = ["texts", "text_file"])]
    images: Vec<PathBuf>,
    /// L2-normalise the embeddings.
    #[arg(long)]
    normalize: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: EmbedFormat,
    /// Write to FILE instead of standard output (required for --format npy on a terminal).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs `clip embed`. Unreadable images are reported on stderr and skipped;
/// it fails (exit 1) only when no image could be embedded.
pub fn run(args: &EmbedArgs, quiet: bool) -> Result<()> {
    if args.text.given() != args.images.is_empty() {
        return Err(Error::invalid(
            "give texts (--text / --text-file) or image files, not both or neither",
        ));
    }
    let pipeline = args.model.load()?;
    let dim = pipeline.embedding_dim();
    let mut failures = 0usize;
    let (inputs, mut rows): (Vec<String>, Vec<Vec<f32>>) = if args.text.given() {
        let texts = args.text.collect()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let t = pipeline.encode_texts(&refs)?;
        let rows = t.rows().map(|r| r.to_vec()).collect();
        (texts, rows)
    } else {
        let files = expand_inputs(&args.images)?;
        let bar = progress(files.len(), quiet, "embedding");
        let results = pipeline.encode_image_files(&files, |done| bar.set_position(done as u64));
        bar.finish_and_clear();
        let mut inputs = Vec::new();
        let mut rows = Vec::new();
        for (path, r) in files.iter().zip(results) {
            match r {
                Ok(v) => {
                    inputs.push(path.display().to_string());
                    rows.push(v);
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("warning: skipped {}: {e}", path.display());
                }
            }
        }
        (inputs, rows)
    };
    if args.normalize {
        for r in rows.iter_mut() {
            clip::kernels::l2_normalize_rows(r, dim);
        }
    }
    let bytes = match args.format {
        EmbedFormat::Jsonl => {
            let mut s = String::new();
            for (input, row) in inputs.iter().zip(&rows) {
                s.push_str(&format!(
                    "{{\"input\":{},\"embedding\":{}}}\n",
                    json_str(input),
                    json_floats(row)
                ));
            }
            s.into_bytes()
        }
        EmbedFormat::Npy => {
            if args.out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(Error::invalid(
                    "--format npy writes binary data: give --out FILE or redirect stdout",
                ));
            }
            let data: Vec<f32> = rows.concat();
            Tensor::new(vec![rows.len(), dim], data)?.to_npy_bytes()
        }
    };
    if failures > 0 && rows.is_empty() {
        return Err(Error::format(format!("none of the {failures} image(s) could be embedded")));
    }
    write_output(args.out.as_deref(), &bytes)?;
    if failures > 0 {
        eprintln!("warning: {failures} file(s) skipped");
    }
    Ok(())
}
