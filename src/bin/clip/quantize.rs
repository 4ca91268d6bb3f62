//! `clip quantize`: a quantized copy of a model directory.

use crate::common::progress;
use clip::{Pipeline, Precision, Result};
use std::path::PathBuf;

/// Write a quantized copy of a model directory: every matrix (linear
/// layers, token embedding) as int8 with one scale per row, other F32
/// tensors as F16, beside the config, tokenizer and preprocessor files.
/// The copy loads like any model directory (`--model OUT_DIR`, Rust,
/// C) and computes with int8 products; B/32 takes about a quarter of its
/// F32 size. Format: docs/quantized.md.
#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {
    /// Quantize to int8 (the one scheme; required so that the command
    /// says what it does).
    #[arg(long, required = true)]
    int8: bool,
    /// Hugging Face model directory to read (not modified).
    #[arg(value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Directory to write (created if missing).
    #[arg(value_name = "OUT_DIR")]
    out: PathBuf,
    /// Replace an existing OUT_DIR/model.safetensors.
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `clip quantize`: writes, then loads the result and runs one text
/// through it as a check.
pub fn run(args: &QuantizeArgs, quiet: bool) -> Result<()> {
    let _ = args.int8;
    let bar = progress(0, quiet, "quantizing");
    let summary = clip::quantize::quantize_dir(&args.model, &args.out, args.force, |done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let pipeline = Pipeline::from_dir(&args.out)?;
    let precision = pipeline.model().precision();
    pipeline.encode_texts(&["a photo"])?;
    let dot = Precision::int8_dot().map_or("none", |d| d.name());
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if args.json {
        let out = serde_json::json!({
            "out": args.out.display().to_string(),
            "quantized_tensors": summary.quantized,
            "other_tensors": summary.kept,
            "bytes_in": summary.bytes_in,
            "bytes_out": summary.bytes_out,
            "files": summary.files,
            "precision": if precision == Precision::Int8 { "int8" } else { "full" },
            "int8_dot": dot,
        });
        println!("{out}");
    } else {
        println!(
            "wrote {}: {} matrices int8, {} other tensors; {:.1} MiB (from {:.1} MiB); {}",
            args.out.display(),
            summary.quantized,
            summary.kept,
            mib(summary.bytes_out),
            mib(summary.bytes_in),
            summary.files.join(", ")
        );
        println!("loaded it back: int8 products on {dot}");
    }
    Ok(())
}
