//! Options and helpers shared by the subcommands.

use clip::{Error, Pipeline, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints `error: <message>` on stderr and returns the exit code for it:
/// 2 for bad usage (an invalid argument), 1 for everything else.
pub fn report(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    match e.kind() {
        clip::ErrorKind::InvalidArgument => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// `--model DIR`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArg {
    /// Hugging Face model directory (config.json, *.safetensors, tokenizer and
    /// preprocessor files). Default: the small demo model built into clip.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Compute with int8 weights and activations: faster (most with VNNI or
    /// SDOT instructions; `clip info` says which run), at a small cost in
    /// accuracy (see the README). On the avx512 kernel of a CPU without
    /// AVX-512 VNNI, the one kernel without int8 products, this changes
    /// nothing.
    #[arg(long)]
    pub int8: bool,
}

impl ModelArg {
    /// Loads the pipeline of `--model`, or the embedded default.
    pub fn load(&self) -> Result<Pipeline> {
        let mut pipeline = match &self.model {
            Some(dir) => Pipeline::from_dir(dir)?,
            None => clip::default_model::pipeline()?,
        };
        if self.int8 {
            pipeline.set_precision(clip::Precision::Int8);
        }
        Ok(pipeline)
    }

    /// `"|int8"` when the embeddings are computed in int8 (part of the cache
    /// and index identities: int8 and full-precision embeddings differ).
    pub fn precision_tag(&self) -> &'static str {
        if self.int8 {
            "|int8"
        } else {
            ""
        }
    }

    /// A short name for the model, for index files and cache keys.
    pub fn describe(&self) -> String {
        match &self.model {
            Some(dir) => dir.display().to_string(),
            None => "built-in demo model".into(),
        }
    }
}

/// `--text T` (repeatable) and `--text-file FILE`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TextArgs {
    /// A text (repeatable; may hold any character; use --text=T for one starting with '-').
    #[arg(long = "text", value_name = "T")]
    pub texts: Vec<String>,
    /// A file with one text per line ('-' reads standard input).
    #[arg(long, value_name = "FILE")]
    pub text_file: Option<PathBuf>,
}

impl TextArgs {
    /// The texts, `--text` ones first, then the file's lines.
    pub fn collect(&self) -> Result<Vec<String>> {
        let mut out = self.texts.clone();
        if let Some(path) = &self.text_file {
            out.extend(read_lines(path)?);
        }
        Ok(out)
    }

    /// Whether any text source was given.
    pub fn given(&self) -> bool {
        !self.texts.is_empty() || self.text_file.is_some()
    }
}

/// The lines of a UTF-8 text file, or of standard input for `-`.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let io_err = |e| Error::io(path, e);
    if path == Path::new("-") {
        let mut lines = Vec::new();
        for line in std::io::stdin().lock().lines() {
            lines.push(line.map_err(|e| Error::format(format!("standard input: {e}")))?);
        }
        return Ok(lines);
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::format(format!("{} is not UTF-8: {e}", path.display())))?;
    Ok(text.lines().map(String::from).collect())
}

/// File extensions treated as images when a directory is given.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Expands files and directories (recursively, images only, sorted) into a
/// list of files; a path that does not exist is an error.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::new(
                clip::ErrorKind::Io,
                format!("{}: no such file or directory", p.display()),
            ));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A progress bar on stderr (hidden with `--quiet` or when stderr is not a terminal).
pub fn progress(len: usize, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A float as JSON (shortest round-trip form; non-finite as null).
pub fn json_f32(v: f32) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// A list of floats as a JSON array.
pub fn json_floats(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|&x| json_f32(x)).collect();
    format!("[{}]", items.join(","))
}

/// Writes `text` to `--out FILE` or standard output.
pub fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    match out {
        Some(path) => std::fs::write(path, bytes).map_err(|e| {
            Error::new(clip::ErrorKind::Io, format!("cannot write {}: {e}", path.display()))
        }),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes).and_then(|_| stdout.flush()).map_err(|e| {
                Error::new(clip::ErrorKind::Io, format!("cannot write to standard output: {e}"))
            })
        }
    }
}
