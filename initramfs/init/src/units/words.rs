//! Splitting a value into words the way systemd's `extract_first_word()`
//! does with `EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE | EXTRACT_CUNESCAPE_RELAX`:
//! words are separated by whitespace; double and single quotes group (also
//! in the middle of a word: `a"b c"d` is `ab cd`); C escapes (`\n`, `\t`,
//! `\\`, `\"`, `\'`, `\s`, `\xNN`, `\NNN`, `\uXXXX`, `\UXXXXXXXX`, …) are
//! decoded inside and outside quotes; an unknown escape is kept as written
//! (`\;` stays `\;`, which `ExecStart=` needs).

/// Splits `s` into words. Errors: an unterminated quote, a trailing lone
/// backslash, an escape that decodes to NUL.
pub(crate) fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        loop {
            let Some(c) = chars.next() else {
                if let Some(q) = quote {
                    return Err(format!("unterminated quoted string (missing {q})"));
                }
                break;
            };
            match (quote, c) {
                (_, '\\') => unescape_one(&mut chars, &mut word)?,
                (None, '"' | '\'') => quote = Some(c),
                (None, c) if c.is_whitespace() => break,
                (Some(q), c) if c == q => quote = None,
                (_, c) => word.push(c),
            }
        }
        words.push(word);
    }
}

/// Decodes the escape after a backslash into `out`.
fn unescape_one(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), String> {
    let Some(c) = chars.next() else {
        return Err("trailing backslash".to_string());
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        's' => Some(' '),
        '\\' | '"' | '\'' => Some(c),
        _ => None,
    };
    if let Some(s) = simple {
        out.push(s);
        return Ok(());
    }
    let (radix, digits) = match c {
        'x' => (16, 2),
        'u' => (16, 4),
        'U' => (16, 8),
        '0'..='7' => (8, 3),
        _ => {
            out.push('\\');
            out.push(c);
            return Ok(());
        }
    };
    // Octal escapes include the first digit already read.
    let mut text = String::new();
    if radix == 8 {
        text.push(c);
    }
    let mut lookahead = chars.clone();
    while text.len() < digits {
        match lookahead.next() {
            Some(d) if d.is_digit(radix) => text.push(d),
            _ => break,
        }
    }
    let decoded = if text.len() == digits {
        u32::from_str_radix(&text, radix)
            .ok()
            .and_then(char::from_u32)
    } else {
        None
    };
    match decoded {
        Some('\0') => Err("escape sequence decodes to a NUL byte".to_string()),
        Some(ch) => {
            let consumed = if radix == 8 { digits - 1 } else { digits };
            for _ in 0..consumed {
                chars.next();
            }
            out.push(ch);
            Ok(())
        }
        None => {
            // Relaxed: keep the invalid escape as written.
            out.push('\\');
            out.push(c);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        split_words(s).unwrap()
    }

    #[test]
    fn whitespace_and_quotes() {
        assert_eq!(w("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(
            w(r#"/bin/echo "hello world" 'single q'"#),
            ["/bin/echo", "hello world", "single q"]
        );
        assert_eq!(w(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(w(r#""""#), [""]);
        assert_eq!(w(r#""it's""#), ["it's"]);
        assert!(w("").is_empty());
    }

    #[test]
    fn escapes() {
        assert_eq!(w(r#"a\ b"#), ["a\\ b"]);
        assert_eq!(w(r#"a\sb \x41\101 \u00e9 \t"#), ["a b", "AA", "é", "\t"]);
        assert_eq!(w(r#""a \"q\" b""#), ["a \"q\" b"]);
        assert_eq!(w(r#"'\n'"#), ["\n"]);
        assert_eq!(w(r#"\; \q \xZZ"#), ["\\;", "\\q", "\\xZZ"]);
        assert_eq!(w(r#"\\"#), ["\\"]);
    }

    #[test]
    fn errors() {
        assert!(split_words(r#"a "b"#).unwrap_err().contains("unterminated"));
        assert!(split_words("a 'b").is_err());
        assert!(split_words("a \\")
            .unwrap_err()
            .contains("trailing backslash"));
        assert!(split_words(r"\x00").unwrap_err().contains("NUL"));
    }
}
