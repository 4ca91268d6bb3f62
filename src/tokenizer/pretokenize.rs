//! Text normalization and splitting into words, for both conventions.
//!
//! Transformers (spec 1.5): NFC, `\s+` to one space, per-character lowercase
//! (no final sigma), CLIP's split pattern, then the GPT-2 ByteLevel re-split.
//! open_clip (spec 1.3/1.4, without ftfy and HTML unescaping): NFC, Python
//! `str.split()` whitespace join, Python `lower()` (final sigma), the split
//! pattern with open_clip's own special tokens, case-insensitive.

use regex::Regex;
use std::borrow::Cow;
use std::sync::OnceLock;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// CLIP's split pattern as transformers 5 writes it (the two special tokens first).
const HF_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// open_clip's pattern: its own special tokens first, compiled with `IGNORECASE`
/// by Python's `regex` module. The text is already lowercased, so case folding
/// only matters for the literals (`'ſ` matches `'s`) and for U+0345 COMBINING
/// GREEK YPOGEGRAMMENI, which folds to a letter: Python's `regex` then matches
/// it with neither `[\p{L}]` nor the negated class, so it separates words like
/// whitespace (the Rust `regex` crate would count it as a letter).
const OPEN_CLIP_PATTERN: &str = r"(?i:<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d)|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+";

fn hf_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(HF_PATTERN).expect("valid CLIP split pattern"))
}

fn open_clip_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(OPEN_CLIP_PATTERN).expect("valid open_clip split pattern"))
}

/// NFC, then per-character lowercase: the transformers normalizer. The `\s+` to
/// one space replacement is skipped: whitespace never belongs to a word, so it
/// cannot change the split (a run of whitespace and a single space separate the
/// same words).
pub(crate) fn normalize_hf(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(text.to_ascii_lowercase());
        }
        return Cow::Borrowed(text);
    }
    let nfc: Cow<'_, str> = match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => Cow::Owned(text.nfc().collect()),
    };
    let mut out = String::with_capacity(nfc.len());
    for c in nfc.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Cow::Owned(out)
}

/// Python's `str.isspace`: Unicode White_Space plus U+001C..U+001F.
fn python_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// open_clip's cleaning without ftfy/HTML: NFC (ftfy's last step), strip and
/// join `str.split()` words with one space, Python full-string lowercase.
pub(crate) fn normalize_open_clip(text: &str) -> String {
    let nfc: Cow<'_, str> = match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => Cow::Owned(text.nfc().collect()),
    };
    let joined: Vec<&str> = nfc.split(python_isspace).filter(|w| !w.is_empty()).collect();
    joined.join(" ").to_lowercase()
}

/// The special-token texts the transformers split pattern keeps whole; the GPT-2
/// ByteLevel re-split cuts them into `<|`, the letters and `|>`.
fn gpt2_resplit(piece: &str) -> Option<[&str; 3]> {
    if piece == "<|startoftext|>" || piece == "<|endoftext|>" {
        let n = piece.len();
        Some([&piece[..2], &piece[2..n - 2], &piece[n - 2..]])
    } else {
        None
    }
}

/// Calls `f` on each word of normalized text, transformers convention.
///
/// The ByteLevel pre-tokenizer re-splits each match with the GPT-2 pattern.
/// For every match of CLIP's pattern other than the two special-token
/// alternatives that re-split is the identity (a letter run, one digit, a
/// punctuation run without letters or digits, or a contraction are each a
/// single GPT-2 match, and no match contains whitespace), so only those two
/// are re-split.
pub(crate) fn split_hf(normalized: &str, mut f: impl FnMut(&str)) {
    for m in hf_regex().find_iter(normalized) {
        let piece = m.as_str();
        match gpt2_resplit(piece) {
            Some(parts) => parts.iter().for_each(|p| f(p)),
            None => f(piece),
        }
    }
}

/// A word of the open_clip convention.
pub(crate) enum OpenClipWord<'a> {
    /// `<start_of_text>`.
    Start,
    /// `<end_of_text>`.
    End,
    /// An ordinary word.
    Word(&'a str),
}

/// Calls `f` on each word of open_clip-normalized text.
pub(crate) fn split_open_clip(normalized: &str, mut f: impl FnMut(OpenClipWord<'_>)) {
    for m in open_clip_regex().find_iter(normalized) {
        let piece = m.as_str();
        // A case-folded match such as `<ſtart_of_text>` is not in open_clip's
        // cache of special tokens, so it is BPE'd as one word.
        if piece == "<start_of_text>" {
            f(OpenClipWord::Start)
        } else if piece == "<end_of_text>" {
            f(OpenClipWord::End)
        } else {
            f(OpenClipWord::Word(piece))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_words() {
        let mut words = Vec::new();
        let text = normalize_hf("It's <|ENDOFTEXT|> 42 ΣΟΦΟΣ!!");
        split_hf(&text, |w| words.push(w.to_string()));
        assert_eq!(words, ["it", "'s", "<|", "endoftext", "|>", "4", "2", "σοφοσ", "!!"]);
    }

    #[test]
    fn open_clip_words() {
        let text = normalize_open_clip("  ΣΟΦΟΣ\u{1c}<END_OF_TEXT> ");
        assert_eq!(text, "σοφος <end_of_text>");
        let mut words = Vec::new();
        split_open_clip("it'ſ a\u{345}b <ſtart_of_text><end_of_text>", |w| {
            words.push(match w {
                OpenClipWord::Start => "START".to_string(),
                OpenClipWord::End => "END".to_string(),
                OpenClipWord::Word(w) => w.to_string(),
            })
        });
        assert_eq!(words, ["it", "'ſ", "a", "b", "<ſtart_of_text>", "END"]);
    }
}
