//! Fuzzes the tokenizer: encoding and decoding arbitrary text with the built-in
//! vocabulary, and building tokenizers from arbitrary `tokenizer.json`,
//! `vocab.json` + `merges.txt` and gzip bytes. Nothing may panic; every id
//! produced must be in the vocabulary.
//!
//! Run: `cargo +nightly fuzz run tokenizer fuzz/corpus/tokenizer fuzz/seeds/tokenizer`.
#![no_main]

use clip::tokenizer::{CLIPTokenizer, Convention, EncodeOptions, Padding};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn builtin() -> &'static CLIPTokenizer {
    static TOK: OnceLock<CLIPTokenizer> = OnceLock::new();
    TOK.get_or_init(|| CLIPTokenizer::builtin().expect("built-in vocabulary"))
}

fn exercise(tok: &CLIPTokenizer, text: &str) {
    for convention in [Convention::Transformers, Convention::OpenClip] {
        let ids = tok.encode_with(text, convention);
        assert!(ids.len() >= 2);
        assert_eq!(ids[0], tok.bos_token_id());
        assert_eq!(*ids.last().unwrap(), tok.eos_token_id());
        for &id in &ids {
            assert!(tok.id_to_token(id).is_some(), "id {id} not in the vocabulary");
        }
        let _ = tok.decode(&ids, false);
        let _ = tok.decode(&ids, true);
    }
    let opts = EncodeOptions { padding: Padding::MaxLength, ..Default::default() };
    let enc = tok.encode_batch(&[text, "a photo of a cat"], &opts).unwrap();
    assert!(enc.input_ids.iter().all(|r| r.len() == 77));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 4 {
        0 => exercise(builtin(), &String::from_utf8_lossy(rest)),
        1 => {
            let ids: Vec<u32> = rest
                .chunks(2)
                .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
                .collect();
            let _ = builtin().decode(&ids, false);
            let _ = builtin().decode(&ids, true);
        }
        2 => {
            if let Ok(tok) = CLIPTokenizer::from_tokenizer_json(rest) {
                exercise(&tok, "Hello <|endoftext|> wörld 123 😀");
            }
        }
        _ => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (vocab, merges) = rest.split_at(split);
            if let Ok(tok) = CLIPTokenizer::from_vocab_merges(vocab, merges.get(1..).unwrap_or(&[]))
            {
                exercise(&tok, "Hello <|endoftext|> wörld 123 😀");
            }
            let _ = CLIPTokenizer::from_openai_gz(rest);
        }
    }
});
