//! `clip tokenize`: token ids and attention masks as JSON lines, identical to
//! `CLIPTokenizerFast(text, padding=.., max_length=.., truncation=..)`.

use clip::tokenizer::{CLIPTokenizer, Convention, EncodeOptions, Padding};
use clip::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Padding strategies of `--padding`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingArg {
    /// Pad every row to --max-length.
    #[value(name = "max_length")]
    MaxLength,
    /// Pad to the longest text given.
    Longest,
    /// No padding.
    None,
}

/// Conventions of `--convention`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConventionArg {
    /// transformers' CLIPTokenizer: pad with <|endoftext|> (49407).
    Transformers,
    /// open_clip / OpenAI clip.tokenize (without ftfy/HTML unescaping): pad with 0.
    #[value(name = "open_clip")]
    OpenClip,
}

/// Tokenize texts with CLIP's BPE tokenizer and print JSON lines
/// `{"input_ids": [...], "attention_mask": [...]}`, one per text, in order.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// Hugging Face model directory (tokenizer.json, or vocab.json + merges.txt).
    /// Default: the built-in CLIP vocabulary.
    #[arg(long, value_name = "DIR", conflicts_with = "tokenizer")]
    pub model: Option<PathBuf>,
    /// A tokenizer file: tokenizer.json, vocab.json (merges.txt beside it) or
    /// OpenAI's bpe_simple_vocab_16e6.txt.gz; or a directory holding them
    /// (read as --model reads one).
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    #[command(flatten)]
    pub text: crate::common::TextArgs,
    /// Row length for padding and truncation.
    #[arg(long, value_name = "N", default_value_t = clip::tokenizer::CONTEXT_LENGTH)]
    pub max_length: usize,
    /// Padding strategy.
    #[arg(long, value_enum, default_value = "max_length")]
    pub padding: PaddingArg,
    /// Do not truncate texts longer than --max-length.
    #[arg(long)]
    pub no_truncation: bool,
    /// Which tokenizer to reproduce.
    #[arg(long, value_enum, default_value = "transformers")]
    pub convention: ConventionArg,
}

/// Runs `clip tokenize`.
pub fn run(args: &TokenizeArgs) -> Result<()> {
    let tokenizer = match (&args.model, &args.tokenizer) {
        (Some(dir), _) => CLIPTokenizer::from_dir(dir)?,
        (None, Some(path)) => CLIPTokenizer::from_file(path)?,
        (None, None) => CLIPTokenizer::builtin()?,
    };
    let texts = args.text.collect()?;
    if !args.text.given() {
        return Err(Error::invalid("no text given: use --text T or --text-file FILE"));
    }
    let opts = EncodeOptions {
        max_length: args.max_length,
        padding: match args.padding {
            PaddingArg::MaxLength => Padding::MaxLength,
            PaddingArg::Longest => Padding::Longest,
            PaddingArg::None => Padding::None,
        },
        truncation: !args.no_truncation,
        pad_token_id: None,
        convention: match args.convention {
            ConventionArg::Transformers => Convention::Transformers,
            ConventionArg::OpenClip => Convention::OpenClip,
        },
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let enc = tokenizer.encode_batch(&refs, &opts)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| Error::io(Path::new("<stdout>"), e);
    for (ids, mask) in enc.input_ids.iter().zip(&enc.attention_mask) {
        // Written by hand to keep the key order of CLI.md.
        let (ids, mask) =
            (serde_json::Value::from(ids.clone()), serde_json::Value::from(mask.clone()));
        writeln!(out, r#"{{"input_ids":{ids},"attention_mask":{mask}}}"#).map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}
