//! CLIP's byte-level BPE tokenizer, identical to transformers 5 `CLIPTokenizer`
//! (== transformers 4 `CLIPTokenizerFast`), with open_clip's conventions as an
//! option (see `docs/tokenizer.md`).
//!
//! ```
//! let tok = clip::tokenizer::CLIPTokenizer::builtin()?;
//! assert_eq!(tok.encode("a photo of a cat"), [49406, 320, 1125, 539, 320, 2368, 49407]);
//! # Ok::<(), clip::Error>(())
//! ```
//!
//! Pipeline of [`Convention::Transformers`]: added special tokens
//! (`<|startoftext|>`, `<|endoftext|>`, exact case) are split out of the raw
//! text; each remaining segment is NFC-normalized and lowercased per character;
//! CLIP's pattern splits it into words (letter runs, single digits, punctuation
//! runs, contractions; whitespace dropped); each word is mapped to byte-level
//! characters and merged by BPE with `</w>` on its last symbol. BOS (49406) and
//! EOS (49407) surround each text.

mod bpe;
mod byte_level;
mod files;
mod load;
mod pretokenize;

use crate::{Error, Result};
use bpe::Bpe;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// The CLIP context length: the default `max_length`.
pub const CONTEXT_LENGTH: usize = 77;

/// CLIP's byte-level BPE tokenizer.
///
/// `Send + Sync`; cloning is cheap (the vocabulary and the word cache are shared).
#[derive(Clone)]
pub struct CLIPTokenizer {
    inner: Arc<Inner>,
    source: Arc<str>,
}

struct Inner {
    bpe: Bpe,
    /// id -> token text, for decoding.
    id_to_token: HashMap<u32, Box<str>>,
    /// Added tokens matched on the raw text, then on the normalized text.
    raw_added: Vec<(String, u32)>,
    normalized_added: Vec<(String, u32)>,
    /// Ids dropped by `decode(.., true)`.
    special_ids: HashSet<u32>,
    bos: u32,
    eos: u32,
    pad: u32,
}

/// How [`CLIPTokenizer::encode_batch`] pads its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Pad every row to `max_length` (transformers `padding="max_length"`).
    #[default]
    MaxLength,
    /// Pad to the longest row of the batch (`padding="longest"` / `True`).
    Longest,
    /// No padding: rows keep their own lengths.
    None,
}

/// Which reference implementation to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convention {
    /// transformers 5 `CLIPTokenizer` (== v4 `CLIPTokenizerFast`): pads with the
    /// tokenizer's pad token (49407) and an attention mask of 0.
    #[default]
    Transformers,
    /// OpenAI `clip.tokenize(truncate=True)` / `open_clip.tokenize` without their
    /// ftfy and HTML-unescape cleaning: pads with id 0; on truncation the last
    /// slot is the end-of-text token; Python-style whitespace collapsing and
    /// lowercasing (final sigma); the text `<|endoftext|>` is *not* special, while
    /// open_clip's `<start_of_text>`/`<end_of_text>` (any case) are.
    OpenClip,
}

/// Options of [`CLIPTokenizer::encode_batch`]; the default is CLIP's
/// `padding="max_length", max_length=77, truncation=True`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Row length for padding and truncation (at least 2); default 77.
    pub max_length: usize,
    /// Padding strategy; default [`Padding::MaxLength`].
    pub padding: Padding,
    /// Truncate to `max_length` (BOS + the first `max_length - 2` tokens + EOS);
    /// default true. Without it, longer texts give rows longer than `max_length`.
    pub truncation: bool,
    /// Padding id; `None` uses the tokenizer's pad token (transformers) or 0 (open_clip).
    pub pad_token_id: Option<u32>,
    /// Which reference to reproduce; default [`Convention::Transformers`].
    pub convention: Convention,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            max_length: CONTEXT_LENGTH,
            padding: Padding::MaxLength,
            truncation: true,
            pad_token_id: None,
            convention: Convention::Transformers,
        }
    }
}

/// The output of [`CLIPTokenizer::encode_batch`], one row per text, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchEncoding {
    /// Token ids, BOS and EOS included, padded as requested.
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding; same shape as `input_ids`.
    pub attention_mask: Vec<Vec<u32>>,
}

impl fmt::Debug for CLIPTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CLIPTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

enum Segment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Splits `text` on the added tokens (leftmost match first, the longest on a tie).
fn split_added<'a>(text: &'a str, tokens: &[(String, u32)], mut f: impl FnMut(Segment<'a>)) {
    if tokens.is_empty() {
        f(Segment::Text(text));
        return;
    }
    let mut next: Vec<Option<usize>> = tokens.iter().map(|(t, _)| text.find(t.as_str())).collect();
    let mut pos = 0;
    loop {
        let mut best: Option<(usize, usize)> = None; // (start, index)
        for (i, n) in next.iter_mut().enumerate() {
            if let Some(start) = *n {
                if start < pos {
                    *n = text[pos..].find(tokens[i].0.as_str()).map(|s| s + pos);
                }
            }
            if let Some(start) = *n {
                let better = match best {
                    None => true,
                    Some((bs, bi)) => {
                        start < bs || (start == bs && tokens[i].0.len() > tokens[bi].0.len())
                    }
                };
                if better {
                    best = Some((start, i));
                }
            }
        }
        match best {
            Some((start, i)) => {
                if start > pos {
                    f(Segment::Text(&text[pos..start]));
                }
                f(Segment::Token(tokens[i].1));
                pos = start + tokens[i].0.len();
            }
            None => {
                if pos < text.len() {
                    f(Segment::Text(&text[pos..]));
                }
                return;
            }
        }
    }
}

impl CLIPTokenizer {
    /// Appends the ids of `text` without BOS/EOS.
    fn encode_content(&self, text: &str, convention: Convention, out: &mut Vec<u32>) {
        let inner = &*self.inner;
        match convention {
            Convention::Transformers => split_added(text, &inner.raw_added, |seg| match seg {
                Segment::Token(id) => out.push(id),
                Segment::Text(raw) => {
                    let normalized = pretokenize::normalize_hf(raw);
                    split_added(&normalized, &inner.normalized_added, |seg| match seg {
                        Segment::Token(id) => out.push(id),
                        Segment::Text(s) => {
                            pretokenize::split_hf(s, |w| inner.bpe.encode_word(w, out))
                        }
                    });
                }
            }),
            Convention::OpenClip => {
                let normalized = pretokenize::normalize_open_clip(text);
                pretokenize::split_open_clip(&normalized, |w| match w {
                    pretokenize::OpenClipWord::Start => out.push(inner.bos),
                    pretokenize::OpenClipWord::End => out.push(inner.eos),
                    pretokenize::OpenClipWord::Word(w) => inner.bpe.encode_word(w, out),
                });
            }
        }
    }

    /// The ids of `text` (transformers convention) with BOS and EOS, without
    /// padding or truncation: `tokenizer(text)["input_ids"]`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, Convention::Transformers)
    }

    /// Like [`encode`](Self::encode) in the given convention.
    pub fn encode_with(&self, text: &str, convention: Convention) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.push(self.inner.bos);
        self.encode_content(text, convention, &mut ids);
        ids.push(self.inner.eos);
        ids
    }

    /// Encodes a batch with truncation and padding, like
    /// `tokenizer(texts, padding=.., truncation=.., max_length=..)`.
    ///
    /// An empty batch gives an empty [`BatchEncoding`] (as transformers does).
    /// Large batches are encoded in parallel on the rayon thread pool.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) if
    /// `opts.max_length < 2` (there must be room for BOS and EOS).
    pub fn encode_batch(&self, texts: &[&str], opts: &EncodeOptions) -> Result<BatchEncoding> {
        use rayon::prelude::*;
        if opts.max_length < 2 {
            return Err(Error::invalid(format!(
                "max_length is {}, it must be at least 2 (room for the start and end tokens)",
                opts.max_length
            )));
        }
        let one = |text: &&str| {
            let mut ids = self.encode_with(text, opts.convention);
            if opts.truncation && ids.len() > opts.max_length {
                ids.truncate(opts.max_length);
                ids[opts.max_length - 1] = self.inner.eos;
            }
            ids
        };
        let mut rows: Vec<Vec<u32>> = if texts.len() >= 32 {
            texts.par_iter().with_min_len(16).map(one).collect()
        } else {
            texts.iter().map(one).collect()
        };
        let pad = opts.pad_token_id.unwrap_or(match opts.convention {
            Convention::Transformers => self.inner.pad,
            Convention::OpenClip => 0,
        });
        let target = match opts.padding {
            Padding::MaxLength => opts.max_length,
            Padding::Longest => rows.iter().map(Vec::len).max().unwrap_or(0),
            Padding::None => 0,
        };
        let mut masks = Vec::with_capacity(rows.len());
        for row in &mut rows {
            let n = row.len();
            let len = n.max(target);
            row.resize(len, pad);
            let mut mask = vec![1u32; n];
            mask.resize(len, 0);
            masks.push(mask);
        }
        Ok(BatchEncoding { input_ids: rows, attention_mask: masks })
    }

    /// Decodes ids to text as transformers' `decode` does: byte-level decoding
    /// (invalid UTF-8 becomes U+FFFD), `</w>` replaced by a space, the result
    /// stripped. Unknown ids are skipped; with `skip_special_tokens` the special
    /// tokens (BOS, EOS, padding, ...) are too.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let inner = &*self.inner;
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for id in ids {
            if skip_special_tokens && inner.special_ids.contains(id) {
                continue;
            }
            let Some(token) = inner.id_to_token.get(id) else { continue };
            let start = bytes.len();
            let mut all_bytes = true;
            for c in token.chars() {
                match byte_level::char_to_byte(c) {
                    Some(b) => bytes.push(b),
                    None => {
                        all_bytes = false;
                        break;
                    }
                }
            }
            if !all_bytes {
                bytes.truncate(start);
                bytes.extend_from_slice(token.as_bytes());
            }
        }
        let text = String::from_utf8_lossy(&bytes).replace("</w>", " ");
        text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
            .to_string()
    }

    /// The number of distinct token ids (`len(tokenizer)` in transformers: 49,408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.inner.id_to_token.len()
    }

    /// The start-of-text id (49406 for CLIP).
    pub fn bos_token_id(&self) -> u32 {
        self.inner.bos
    }

    /// The end-of-text id (49407 for CLIP).
    pub fn eos_token_id(&self) -> u32 {
        self.inner.eos
    }

    /// The padding id of the transformers convention (49407 for CLIP, from
    /// `tokenizer_config.json` / `special_tokens_map.json` when present).
    pub fn pad_token_id(&self) -> u32 {
        self.inner.pad
    }

    /// The token text of `id`, if it is in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.inner.id_to_token.get(&id).map(|t| &**t)
    }

    /// Where the vocabulary came from, e.g. `tokenizer.json at /m/tokenizer.json`
    /// or `built-in CLIP vocabulary`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The number of words in the BPE cache (bounded by an internal capacity).
    #[doc(hidden)]
    pub fn cached_words(&self) -> usize {
        self.inner.bpe.cache_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn is_send_sync() {
        send_sync::<CLIPTokenizer>();
    }

    #[test]
    fn split_added_leftmost_longest() {
        let toks = vec![("<a>".to_string(), 1), ("<a><b>".to_string(), 2), ("<b>".to_string(), 3)];
        let mut out = Vec::new();
        split_added("x<a><b>y<b><a>", &toks, |s| match s {
            Segment::Text(t) => out.push(t.to_string()),
            Segment::Token(id) => out.push(id.to_string()),
        });
        assert_eq!(out, ["x", "2", "y", "3", "1"]);
    }

    #[test]
    fn heap_and_simple_merges_agree() {
        let tok = CLIPTokenizer::builtin().unwrap();
        let bpe = &tok.inner.bpe;
        let mut seed = 12345u64;
        let alphabet: Vec<char> = "aabbeeiinnoorrsstt'.-é中😀".chars().collect();
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = 1 + (seed >> 33) as usize % 40;
            let word: String = (0..len)
                .map(|i| {
                    let r = seed.wrapping_mul(i as u64 + 7).rotate_left(i as u32 * 7) >> 40;
                    alphabet[r as usize % alphabet.len()]
                })
                .collect();
            let syms = bpe.symbols(word.as_bytes());
            assert_eq!(bpe.merge_simple(syms.clone()), bpe.merge_heap(syms), "{word:?}");
        }
    }
}
