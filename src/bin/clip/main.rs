//! The `clip` command line: offline zero-shot tagging, embeddings, search.
//!
//! Exit codes: 0 success, 1 runtime error (bad file, bad model), 2 bad usage.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod common;
mod preprocess;
mod tokenize;

/// CLIP on the CPU: tag, embed, compare and search images and texts, offline.
#[derive(Parser, Debug)]
#[command(name = "clip", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print token ids and attention masks as JSON lines (like CLIPTokenizerFast).
    Tokenize(tokenize::TokenizeArgs),
    /// Preprocess an image into CLIP's `pixel_values` (a `(1, 3, H, W)` float32 `.npy`).
    Preprocess(preprocess::PreprocessArgs),
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
    let result: clip::Result<()> = match cli.command {
        Command::Tokenize(args) => tokenize::run(&args),
        Command::Preprocess(args) => preprocess::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::report(&e),
    }
}
