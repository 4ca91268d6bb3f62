//! Image decoding and `CLIPImageProcessor` (see issue 4).
