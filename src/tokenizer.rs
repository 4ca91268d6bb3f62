//! CLIP byte-level BPE tokenizer (see issue 3).
