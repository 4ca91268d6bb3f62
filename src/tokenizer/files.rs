//! Parsing the three vocabulary formats into one [`Parsed`] description:
//! `tokenizer.json` (Hugging Face), `vocab.json` + `merges.txt`, and OpenAI's
//! `bpe_simple_vocab_16e6.txt.gz`, plus the special-token names of
//! `tokenizer_config.json` / `special_tokens_map.json`.

use super::byte_level;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;

/// The number of merges OpenAI's tokenizer reads from the .gz (spec 1.2).
pub(crate) const OPENAI_MERGES: usize = 49152 - 256 - 2;
/// CLIP's start-of-text token.
pub(crate) const BOS_TEXT: &str = "<|startoftext|>";
/// CLIP's end-of-text token (also unknown and padding token).
pub(crate) const EOS_TEXT: &str = "<|endoftext|>";

/// A token matched in the text before BPE (`added_tokens` of tokenizer.json).
#[derive(Debug, Clone)]
pub(crate) struct AddedToken {
    pub content: String,
    pub id: u32,
    /// Matched on the normalized text rather than the raw text.
    pub normalized: bool,
    /// Removed by `decode(.., skip_special_tokens = true)`.
    pub special: bool,
}

/// A vocabulary file, parsed but not yet checked for consistency.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub vocab: HashMap<String, u32>,
    pub merges: Vec<(String, String)>,
    pub added: Vec<AddedToken>,
    pub unk_token: Option<String>,
    /// BOS/EOS ids from a tokenizer.json post-processor.
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
}

#[derive(Deserialize)]
struct TokenizerJson {
    model: ModelJson,
    #[serde(default)]
    added_tokens: Vec<AddedTokenJson>,
    #[serde(default)]
    post_processor: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
    merges: Vec<MergeJson>,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MergeJson {
    Text(String),
    Pair(Vec<String>),
}

#[derive(Deserialize)]
struct AddedTokenJson {
    id: u32,
    content: String,
    #[serde(default)]
    normalized: bool,
    #[serde(default)]
    special: bool,
}

fn split_merge(line: &str, what: &str, index: usize) -> Result<(String, String)> {
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
            Ok((a.to_string(), b.to_string()))
        }
        _ => Err(Error::format(format!(
            "{what} {index} is {line:?}, expected two symbols separated by one space"
        ))),
    }
}

/// Parses a Hugging Face `tokenizer.json` with a BPE model.
pub(crate) fn parse_tokenizer_json(bytes: &[u8]) -> Result<Parsed> {
    let tj: TokenizerJson = serde_json::from_slice(bytes)
        .map_err(|e| Error::format(format!("not a valid tokenizer.json: {e}")))?;
    let model = tj.model;
    if let Some(kind) = &model.kind {
        if kind != "BPE" {
            return Err(Error::unsupported(format!(
                "tokenizer.json model type {kind:?}; CLIP uses \"BPE\""
            )));
        }
    }
    if let Some(suffix) = &model.end_of_word_suffix {
        if suffix != "</w>" {
            return Err(Error::unsupported(format!(
                "BPE end_of_word_suffix {suffix:?}; CLIP uses \"</w>\""
            )));
        }
    }
    if let Some(prefix) = &model.continuing_subword_prefix {
        if !prefix.is_empty() {
            return Err(Error::unsupported(format!(
                "BPE continuing_subword_prefix {prefix:?}; CLIP uses none"
            )));
        }
    }
    let mut merges = Vec::with_capacity(model.merges.len());
    for (i, m) in model.merges.into_iter().enumerate() {
        merges.push(match m {
            MergeJson::Text(s) => split_merge(&s, "merge", i)?,
            MergeJson::Pair(v) => match <[String; 2]>::try_from(v) {
                Ok([a, b]) => (a, b),
                Err(v) => {
                    return Err(Error::format(format!(
                        "merge {i} has {} elements, expected 2",
                        v.len()
                    )))
                }
            },
        });
    }
    let added = tj
        .added_tokens
        .into_iter()
        .map(|a| AddedToken {
            content: a.content,
            id: a.id,
            normalized: a.normalized,
            special: a.special,
        })
        .collect();
    let (bos_id, eos_id) = post_processor_ids(tj.post_processor.as_ref());
    Ok(Parsed { vocab: model.vocab, merges, added, unk_token: model.unk_token, bos_id, eos_id })
}

/// `cls`/`sep` ids of a `RobertaProcessing`/`BertProcessing` post-processor.
fn post_processor_ids(pp: Option<&serde_json::Value>) -> (Option<u32>, Option<u32>) {
    let id = |name: &str| {
        pp.and_then(|p| p.get(name))
            .and_then(|v| v.get(1))
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
    };
    (id("cls"), id("sep"))
}

/// Parses `vocab.json` and `merges.txt` (first line `#version...` skipped, blank lines ignored).
pub(crate) fn parse_vocab_merges(vocab_json: &[u8], merges_txt: &[u8]) -> Result<Parsed> {
    let vocab: HashMap<String, u32> = serde_json::from_slice(vocab_json)
        .map_err(|e| Error::format(format!("not a valid vocab.json: {e}")))?;
    let text = std::str::from_utf8(merges_txt)
        .map_err(|e| Error::format(format!("merges.txt is not UTF-8: {e}")))?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if (i == 0 && line.starts_with("#version")) || line.trim().is_empty() {
            continue;
        }
        merges.push(split_merge(line, "merges.txt line", i + 1)?);
    }
    Ok(Parsed { vocab, merges, ..Parsed::default() })
}

/// Decompresses a gzip file (bounded to 64 MiB of output).
pub(crate) fn gunzip(gz: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(64 << 20)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(format!("not a valid gzip file: {e}")))?;
    Ok(out)
}

/// Parses OpenAI's `bpe_simple_vocab_16e6.txt` (decompressed): the first
/// 48,894 merges after the header line, and the vocabulary derived from them.
pub(crate) fn parse_openai_bpe(text: &[u8]) -> Result<Parsed> {
    let text = std::str::from_utf8(text)
        .map_err(|e| Error::format(format!("BPE file is not UTF-8: {e}")))?;
    let lines: Vec<&str> = text.split('\n').skip(1).take(OPENAI_MERGES).collect();
    if lines.len() < OPENAI_MERGES {
        return Err(Error::format(format!(
            "BPE file has {} merge lines, OpenAI's format needs {OPENAI_MERGES}",
            lines.len()
        )));
    }
    let mut merges = Vec::with_capacity(OPENAI_MERGES);
    for (i, line) in lines.iter().enumerate() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
            _ => {
                return Err(Error::format(format!(
                    "BPE file line {} is {line:?}, expected two symbols",
                    i + 2
                )))
            }
        }
    }
    let mut tokens: Vec<String> = byte_level::vocab_order().map(String::from).collect();
    let eow: Vec<String> = tokens.iter().map(|t| format!("{t}</w>")).collect();
    tokens.extend(eow);
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push(BOS_TEXT.to_string());
    tokens.push(EOS_TEXT.to_string());
    let mut vocab = HashMap::with_capacity(tokens.len());
    for (id, t) in tokens.into_iter().enumerate() {
        // dict(zip(vocab, range)): a repeated token keeps its last id.
        vocab.insert(t, id as u32);
    }
    Ok(Parsed { vocab, merges, ..Parsed::default() })
}

/// Special-token names from `tokenizer_config.json` / `special_tokens_map.json`.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpecialNames {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub pad: Option<String>,
    pub unk: Option<String>,
}

impl SpecialNames {
    /// Reads the `*_token` entries (a string or `{"content": ...}`) of a config file.
    pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(format!("{file} is not valid JSON: {e}")))?;
        let get = |k: &str| -> Option<String> {
            match v.get(k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                obj => obj.get("content")?.as_str().map(String::from),
            }
        };
        Ok(SpecialNames {
            bos: get("bos_token"),
            eos: get("eos_token"),
            pad: get("pad_token"),
            unk: get("unk_token"),
        })
    }

    /// Fills the names missing in `self` from `other`.
    pub(crate) fn or(self, other: SpecialNames) -> SpecialNames {
        SpecialNames {
            bos: self.bos.or(other.bos),
            eos: self.eos.or(other.eos),
            pad: self.pad.or(other.pad),
            unk: self.unk.or(other.unk),
        }
    }
}
