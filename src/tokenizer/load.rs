//! Building a [`CLIPTokenizer`] from files, bytes or the embedded vocabulary,
//! with consistency checks that turn malformed files into `Format` errors.

use super::bpe::Bpe;
use super::byte_level::BYTE_TO_CHAR;
use super::files::{self, AddedToken, Parsed, SpecialNames, BOS_TEXT, EOS_TEXT};
use super::{CLIPTokenizer, Inner};
use crate::error::ResultExt;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// OpenAI's `bpe_simple_vocab_16e6.txt.gz` (md5 933b7abbbbde62c36f02f0e6ccde464f).
static BUILTIN_GZ: &[u8] = include_bytes!("bpe_simple_vocab_16e6.txt.gz");

fn build(parsed: Parsed, names: SpecialNames, source: String) -> Result<CLIPTokenizer> {
    let Parsed { vocab, merges, mut added, unk_token, bos_id, eos_id } = parsed;
    if vocab.is_empty() {
        return Err(Error::format("the vocabulary is empty"));
    }
    let lookup = |name: &str, added: &[AddedToken]| -> Option<u32> {
        added.iter().find(|a| a.content == name).map(|a| a.id).or_else(|| vocab.get(name).copied())
    };
    let resolve =
        |what: &str, name: Option<&String>, id: Option<u32>, default: &str| -> Result<u32> {
            if let Some(name) = name {
                return lookup(name, &added).ok_or_else(|| {
                    Error::format(format!("the {what} token {name:?} is not in the vocabulary"))
                });
            }
            if let Some(id) = id {
                return Ok(id);
            }
            lookup(default, &added)
                .ok_or_else(|| Error::format(format!("the {what} token {default:?} is missing")))
        };
    // The post-processor's ids are the ones transformers actually inserts.
    let bos = resolve(
        "start-of-text",
        names.bos.as_ref().filter(|_| bos_id.is_none()),
        bos_id,
        BOS_TEXT,
    )?;
    let eos =
        resolve("end-of-text", names.eos.as_ref().filter(|_| eos_id.is_none()), eos_id, EOS_TEXT)?;
    let pad = match &names.pad {
        Some(name) => resolve("padding", Some(name), None, EOS_TEXT)?,
        None => eos,
    };
    let unk_name = names.unk.clone().or(unk_token).unwrap_or_else(|| EOS_TEXT.to_string());
    let unk = lookup(&unk_name, &added);

    // transformers registers the special tokens as (non-normalized) added tokens.
    let mut specials: Vec<(&str, u32)> = Vec::new();
    for (name, default, id) in [
        (&names.bos, BOS_TEXT, bos),
        (&names.eos, EOS_TEXT, eos),
        (&names.pad, EOS_TEXT, pad),
        (&names.unk, EOS_TEXT, unk.unwrap_or(eos)),
    ] {
        let text = name.as_deref().unwrap_or(default);
        if lookup(text, &added) == Some(id) {
            specials.push((text, id));
        }
    }
    for (text, id) in specials {
        if !added.iter().any(|a| a.content == text) {
            added.push(AddedToken {
                content: text.to_string(),
                id,
                normalized: false,
                special: true,
            });
        }
    }

    let mut id_to_token: HashMap<u32, Box<str>> = HashMap::with_capacity(vocab.len() + added.len());
    for (t, &id) in &vocab {
        id_to_token.entry(id).or_insert_with(|| t.as_str().into());
    }
    for a in &added {
        if a.content.is_empty() {
            return Err(Error::format(format!("added token {} has empty content", a.id)));
        }
        id_to_token.insert(a.id, a.content.as_str().into());
    }

    let mut merge_ids = Vec::with_capacity(merges.len());
    for (rank, (a, b)) in merges.iter().enumerate() {
        let get = |s: &str| {
            vocab.get(s).copied().ok_or_else(|| {
                Error::format(format!(
                    "merge {rank} ({a:?} {b:?}) uses {s:?}, which is not in the vocabulary"
                ))
            })
        };
        merge_ids.push((get(a)?, get(b)?, get(&format!("{a}{b}"))?));
    }

    let mut byte_ids = [0u32; 256];
    let mut byte_eow_ids = [0u32; 256];
    for b in 0..256 {
        let c = BYTE_TO_CHAR[b];
        let mut buf = [0u8; 4];
        let s: &str = c.encode_utf8(&mut buf);
        let missing = |what: String| {
            Error::format(format!(
                "the vocabulary lacks the byte symbol {what:?} and has no unknown token ({unk_name:?})"
            ))
        };
        byte_ids[b] = match vocab.get(s).copied().or(unk) {
            Some(id) => id,
            None => return Err(missing(s.to_string())),
        };
        let eow = format!("{s}</w>");
        byte_eow_ids[b] = match vocab.get(&eow).copied().or(unk) {
            Some(id) => id,
            None => return Err(missing(eow)),
        };
    }

    let mut special_ids: HashSet<u32> = added.iter().filter(|a| a.special).map(|a| a.id).collect();
    special_ids.extend([bos, eos, pad]);
    let (normalized, raw): (Vec<&AddedToken>, Vec<&AddedToken>) =
        added.iter().partition(|a| a.normalized);
    let pairs =
        |v: Vec<&AddedToken>| v.into_iter().map(|a| (a.content.clone(), a.id)).collect::<Vec<_>>();
    let normalized_added = normalized
        .into_iter()
        .map(|a| (super::pretokenize::normalize_hf(&a.content).into_owned(), a.id))
        .collect();
    Ok(CLIPTokenizer {
        inner: Arc::new(Inner {
            bpe: Bpe::new(&merge_ids, byte_ids, byte_eow_ids),
            id_to_token,
            raw_added: pairs(raw),
            normalized_added,
            special_ids,
            bos,
            eos,
            pad,
        }),
        source: source.into(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Special-token names from `tokenizer_config.json` then `special_tokens_map.json` in `dir`.
fn special_names(dir: &Path) -> Result<SpecialNames> {
    let mut names = SpecialNames::default();
    for file in ["tokenizer_config.json", "special_tokens_map.json"] {
        let path = dir.join(file);
        if path.is_file() {
            let parsed = SpecialNames::parse(&read(&path)?, &path.display().to_string())?;
            names = names.or(parsed);
        }
    }
    Ok(names)
}

fn load_tokenizer_json(path: &Path) -> Result<CLIPTokenizer> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let parsed = files::parse_tokenizer_json(&read(path)?).with_context(|| path.display())?;
    build(parsed, special_names(dir)?, format!("tokenizer.json at {}", path.display()))
        .with_context(|| path.display())
}

fn load_vocab_merges(vocab: &Path, merges: &Path) -> Result<CLIPTokenizer> {
    let dir = vocab.parent().unwrap_or(Path::new("."));
    let parsed = files::parse_vocab_merges(&read(vocab)?, &read(merges)?)
        .with_context(|| format!("{} + {}", vocab.display(), merges.display()))?;
    let source = format!("vocab.json + merges.txt at {}", dir.display());
    build(parsed, special_names(dir)?, source)
        .with_context(|| format!("{} + {}", vocab.display(), merges.display()))
}

fn load_openai(path: &Path, gz: bool) -> Result<CLIPTokenizer> {
    let bytes = read(path)?;
    let text = if gz { files::gunzip(&bytes).with_context(|| path.display())? } else { bytes };
    let parsed = files::parse_openai_bpe(&text).with_context(|| path.display())?;
    build(parsed, SpecialNames::default(), format!("OpenAI BPE file {}", path.display()))
}

impl CLIPTokenizer {
    /// The tokenizer of the embedded OpenAI vocabulary (`bpe_simple_vocab_16e6.txt.gz`,
    /// the vocabulary of every OpenAI and Hugging Face CLIP checkpoint).
    /// Decompressed and built once per process; later calls share it.
    pub fn builtin() -> Result<Self> {
        static BUILTIN: OnceLock<std::result::Result<CLIPTokenizer, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let text = files::gunzip(BUILTIN_GZ).map_err(|e| e.to_string())?;
                let parsed = files::parse_openai_bpe(&text).map_err(|e| e.to_string())?;
                build(parsed, SpecialNames::default(), "built-in CLIP vocabulary".into())
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Error::internal(format!("the built-in vocabulary is broken: {e}")))
    }

    /// Loads the tokenizer of a Hugging Face model directory: `tokenizer.json` if
    /// present, else `vocab.json` + `merges.txt`, else the built-in vocabulary.
    /// Special tokens (e.g. `pad_token`) come from `tokenizer_config.json` /
    /// `special_tokens_map.json` when present.
    ///
    /// # Errors
    /// `Io` if `dir` is not a readable directory, `Format` for malformed files
    /// (including `vocab.json` without `merges.txt` or vice versa).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            let err = std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory");
            return Err(Error::io(dir, err));
        }
        let tj = dir.join("tokenizer.json");
        if tj.is_file() {
            return load_tokenizer_json(&tj);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        match (vocab.is_file(), merges.is_file()) {
            (true, true) => load_vocab_merges(&vocab, &merges),
            (false, false) => {
                let tok = Self::builtin()?;
                let source =
                    format!("built-in CLIP vocabulary (no tokenizer files in {})", dir.display());
                Ok(CLIPTokenizer { source: source.into(), ..tok })
            }
            (true, false) => {
                Err(Error::format(format!("{} has no merges.txt beside it", vocab.display())))
            }
            (false, true) => {
                Err(Error::format(format!("{} has no vocab.json beside it", merges.display())))
            }
        }
    }

    /// Loads one file, by name: `vocab.json` (with `merges.txt` beside it),
    /// `merges.txt` (with `vocab.json` beside it), any other `*.json` as a
    /// `tokenizer.json`, `*.gz` as OpenAI's gzipped BPE file and any other
    /// `*.txt` as OpenAI's uncompressed BPE file. For the JSON formats,
    /// `tokenizer_config.json` / `special_tokens_map.json` beside the file are read too.
    /// A directory is read as by [`CLIPTokenizer::from_dir`].
    ///
    /// # Errors
    /// `Io` if a file cannot be read, `Format` if it is malformed,
    /// `InvalidArgument` for an unrecognised file name.
    pub fn from_file(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::from_dir(path);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new("."));
        if name == "vocab.json" {
            load_vocab_merges(path, &dir.join("merges.txt"))
        } else if name == "merges.txt" {
            load_vocab_merges(&dir.join("vocab.json"), path)
        } else if name.ends_with(".json") {
            load_tokenizer_json(path)
        } else if name.ends_with(".gz") {
            load_openai(path, true)
        } else if name.ends_with(".txt") {
            load_openai(path, false)
        } else {
            Err(Error::invalid(format!(
                "{}: expected tokenizer.json, vocab.json, merges.txt or an OpenAI .txt/.txt.gz BPE file",
                path.display()
            )))
        }
    }

    /// Builds a tokenizer from the bytes of `vocab.json` and `merges.txt`
    /// (CLIP's default special tokens).
    pub fn from_vocab_merges(vocab_json: &[u8], merges_txt: &[u8]) -> Result<Self> {
        let parsed = files::parse_vocab_merges(vocab_json, merges_txt)?;
        build(parsed, SpecialNames::default(), "vocab.json + merges.txt (in memory)".into())
    }

    /// Builds a tokenizer from the bytes of a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Self> {
        let parsed = files::parse_tokenizer_json(bytes)?;
        build(parsed, SpecialNames::default(), "tokenizer.json (in memory)".into())
    }

    /// Builds a tokenizer from the bytes of OpenAI's `bpe_simple_vocab_16e6.txt.gz`.
    pub fn from_openai_gz(gz: &[u8]) -> Result<Self> {
        let parsed = files::parse_openai_bpe(&files::gunzip(gz)?)?;
        build(parsed, SpecialNames::default(), "OpenAI BPE file (in memory)".into())
    }
}
