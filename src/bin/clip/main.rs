//! The `clip` command line: offline zero-shot tagging, embeddings, search.
//!
//! Exit codes: 0 success, 1 runtime error (bad file, bad model), 2 bad usage.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod common;
mod embed;
mod index;
mod info;
mod preprocess;
mod quantize;
mod similarity;
mod tag;
mod tokenize;

/// CLIP on the CPU: tag, embed, compare and search images and texts, offline.
#[derive(Parser, Debug)]
#[command(name = "clip", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads (default: one per core).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bars or notes on stderr (warnings and errors still print).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tag images with the labels that fit best (offline zero-shot classification).
    Tag(tag::TagArgs),
    /// Embed texts or images (get_text_features / get_image_features) as JSON lines or .npy.
    Embed(embed::EmbedArgs),
    /// Score images against texts (CLIP logits or cosine similarity).
    Similarity(similarity::SimilarityArgs),
    /// Build or update an image index for `clip search`.
    Index(index::IndexArgs),
    /// Search an index by text.
    Search(index::SearchArgs),
    /// Print token ids and attention masks as JSON lines (like CLIPTokenizerFast).
    Tokenize(tokenize::TokenizeArgs),
    /// Preprocess an image into CLIP's `pixel_values` (a `(1, 3, H, W)` float32 `.npy`).
    Preprocess(preprocess::PreprocessArgs),
    /// Show a model's architecture, sizes, weights, preprocessing and tokenizer.
    Info(info::InfoArgs),
    /// Write a quantized (int8) copy of a model directory.
    Quantize(quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, usage errors with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::from(1);
        }
    }
    let quiet = cli.quiet;
    let result: clip::Result<()> = match cli.command {
        Command::Tag(args) => tag::run(&args, quiet),
        Command::Embed(args) => embed::run(&args, quiet),
        Command::Similarity(args) => similarity::run(&args),
        Command::Index(args) => index::run_index(&args, quiet),
        Command::Search(args) => index::run_search(&args),
        Command::Info(args) => info::run(&args),
        Command::Tokenize(args) => tokenize::run(&args),
        Command::Preprocess(args) => preprocess::run(&args),
        Command::Quantize(args) => quantize::run(&args, quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::report(&e),
    }
}
