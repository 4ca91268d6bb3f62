//! GPT-2/CLIP `bytes_to_unicode`: every byte gets a printable character, so that
//! BPE symbols are strings without whitespace or control characters (spec 1.1).

/// The character standing for each byte.
pub(crate) const BYTE_TO_CHAR: [char; 256] = build_byte_to_char();

/// Characters used by [`BYTE_TO_CHAR`] are all below this code point.
const CHAR_LIMIT: usize = 0x144;

/// The inverse of [`BYTE_TO_CHAR`], indexed by code point (`u16::MAX` = not a byte char).
static CHAR_TO_BYTE: [u16; CHAR_LIMIT] = build_char_to_byte();

const fn is_printable(b: usize) -> bool {
    (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

const fn build_byte_to_char() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0;
    while b < 256 {
        out[b] = if is_printable(b) {
            b as u8 as char
        } else {
            let c = 256 + n;
            n += 1;
            match char::from_u32(c) {
                Some(c) => c,
                None => '\0',
            }
        };
        b += 1;
    }
    out
}

const fn build_char_to_byte() -> [u16; CHAR_LIMIT] {
    let table = build_byte_to_char();
    let mut out = [u16::MAX; CHAR_LIMIT];
    let mut b = 0;
    while b < 256 {
        out[table[b] as usize] = b as u16;
        b += 1;
    }
    out
}

/// The byte a byte-level character stands for, if it is one.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    CHAR_TO_BYTE.get(c as usize).and_then(|&b| u8::try_from(b).ok())
}

/// The 256 byte characters in `bytes_to_unicode` insertion order (printable bytes
/// first, then the others), which is the order of vocabulary ids 0..255.
pub(crate) fn vocab_order() -> impl Iterator<Item = char> {
    let printable = (0..256usize).filter(|&b| is_printable(b));
    let others = (0..256usize).filter(|&b| !is_printable(b));
    printable.chain(others).map(|b| BYTE_TO_CHAR[b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_spec() {
        assert_eq!(BYTE_TO_CHAR[0x00], '\u{100}');
        assert_eq!(BYTE_TO_CHAR[0x20], '\u{120}');
        assert_eq!(BYTE_TO_CHAR[0x7F], '\u{121}');
        assert_eq!(BYTE_TO_CHAR[0xA0], '\u{142}');
        assert_eq!(BYTE_TO_CHAR[0xAD], '\u{143}');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(BYTE_TO_CHAR[b as usize]), Some(b));
        }
        let order: Vec<char> = vocab_order().collect();
        assert_eq!(order[0], '!');
        assert_eq!(order[93], '~');
        assert_eq!(order[188], '\u{100}');
        assert_eq!(order[255], '\u{143}');
    }
}
