//! The two encodings the lock's wire formats need: standard base64 (etcd's
//! JSON gateway carries keys and values as protobuf `bytes`) and Go's
//! `url.QueryEscape` (locksmith's escaping of a group in the key).
//!
//! Written by hand, deliberately small: `base64` is in the dependency tree
//! (through ureq) but not a dependency of this crate, and this change keeps
//! the crate's manifest and the workspace lock file as they are; no crate
//! reproduces Go's QueryEscape (space as `+`, `~` kept) exactly. Both are
//! checked against known vectors below. Swap the base64 half for the crate
//! when the manifest is next touched.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as Go's `StdEncoding`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let six = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(ALPHABET[six as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; padding may be left out (protobuf's JSON
/// parsers accept both), anything else is an error naming the position.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || (text.len() != body.len() && !text.len().is_multiple_of(4)) {
        return Err(format!("bad base64 padding in {text:?}"));
    }
    if body.len() % 4 == 1 {
        return Err(format!("bad base64 length {} in {text:?}", body.len()));
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, c) in body.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => {
                return Err(format!(
                    "bad base64 byte {:?} at {i} in {text:?}",
                    c as char
                ))
            }
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space is
/// `+`, every other byte `%XX` (upper case).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            // What etcd answered for this key in a real range request.
            ("coreos.com/x", "Y29yZW9zLmNvbS94"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base64_all_bytes_round_trip_and_use_the_high_characters() {
        let all: Vec<u8> = (0..=255).collect();
        let coded = base64_encode(&all);
        assert!(coded.contains('+') && coded.contains('/'));
        assert_eq!(base64_decode(&coded).unwrap(), all);
        assert_eq!(base64_decode("Zm8").unwrap(), b"fo");
    }

    #[test]
    fn base64_refuses_garbage() {
        assert!(base64_decode("Zm9v!A==").unwrap_err().contains("at 4"));
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zg===").is_err());
        assert!(base64_decode("Zm9=").is_ok());
        assert!(base64_decode("Zm9v-_").is_err());
    }

    #[test]
    fn query_escape_matches_go() {
        // Outputs of Go's url.QueryEscape.
        assert_eq!(query_escape("web-1_a.b~c"), "web-1_a.b~c");
        assert_eq!(query_escape("a b/c"), "a+b%2Fc");
        assert_eq!(query_escape("é&=%"), "%C3%A9%26%3D%25");
    }
}
