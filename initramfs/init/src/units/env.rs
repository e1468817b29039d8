//! `Environment=` values and `EnvironmentFile=` contents.

use super::words::split_words;

/// A name usable as `$NAME`: ASCII letters, digits and `_`, not starting
/// with a digit.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Assignments in order.
pub(crate) type Vars = Vec<(String, String)>;

/// One `Environment=` value: `A=1 "B=two words" C="x y"`. Returns the
/// assignments in order and a warning per invalid word; an error when the
/// value cannot be split (unterminated quote).
pub(crate) fn parse_environment(value: &str) -> Result<(Vars, Vec<String>), String> {
    let mut vars = Vec::new();
    let mut warnings = Vec::new();
    for word in split_words(value)? {
        match word.split_once('=') {
            Some((k, v)) if valid_name(k) => vars.push((k.to_string(), v.to_string())),
            _ => warnings.push(format!("invalid environment assignment {word:?}, ignoring")),
        }
    }
    Ok((vars, warnings))
}

/// Parses the contents of an `EnvironmentFile=` (done by the supervisor
/// at start, the file may be written by `ExecStartPre=`): `KEY=value`
/// lines; `#` and `;` start comment lines; whitespace around the key and
/// value is dropped; `'…'` is literal, `"…"` allows `\"`, `\\`, `` \` ``
/// and `\$`; outside quotes a backslash escapes the next character and a
/// trailing backslash joins the next line. Lines without a valid
/// `KEY=` are skipped.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        logical.clear();
        logical.push_str(line);
        // Join continuation lines (odd number of trailing backslashes
        // outside quotes is the common case; quotes spanning lines are
        // handled by joining with a newline).
        while needs_more(&logical) {
            let Some(next) = lines.next() else { break };
            if ends_with_odd_backslashes(&logical) {
                logical.pop();
            } else {
                logical.push('\n');
            }
            logical.push_str(next);
        }
        let l = logical.trim_start();
        if l.is_empty() || l.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = l.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !valid_name(key) {
            continue;
        }
        vars.push((key.to_string(), env_file_value(value.trim_start())));
    }
    vars
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// A line continues when it ends in an unescaped backslash or a quote is
/// still open.
fn needs_more(s: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (None, '"' | '\'') => quote = Some(c),
            (Some('"'), '"') => quote = None,
            _ => {}
        }
    }
    escaped || quote.is_some()
}

fn env_file_value(v: &str) -> String {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                out.push_str(&pending_space);
                pending_space.clear();
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    out.push(q);
                }
            }
            '"' => {
                out.push_str(&pending_space);
                pending_space.clear();
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                            Some('\n') => {}
                            Some(e) => {
                                out.push('\\');
                                out.push(e);
                            }
                            None => out.push('\\'),
                        },
                        _ => out.push(q),
                    }
                }
            }
            '\\' => {
                out.push_str(&pending_space);
                pending_space.clear();
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            c if c.is_whitespace() => pending_space.push(c),
            c => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(c);
            }
        }
    }
    // Trailing unquoted whitespace is dropped.
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn names() {
        assert!(valid_name("PATH"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("1x"));
        assert!(!valid_name(""));
        assert!(!valid_name("A-B"));
    }

    #[test]
    fn environment_values() {
        let (v, w) = parse_environment(r#"A=1 "B=two words" C="x y" D= E=a=b"#).unwrap();
        assert_eq!(
            v,
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "x y"),
                ("D", ""),
                ("E", "a=b")
            ])
        );
        assert!(w.is_empty());
        let (v, w) = parse_environment("GOOD=1 bad 9X=2").unwrap();
        assert_eq!(v, pairs(&[("GOOD", "1")]));
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("\"bad\""));
        assert!(parse_environment("A=\"open").is_err());
    }

    #[test]
    fn env_files() {
        let text = "# comment\n; other\nA=1\n  B = spaced value  \nC='single $x'\nD=\"dq \\\"in\\\" \\$HOME\"\nE=line\\\ncontinued\nF=\"multi\nline\"\nnot a var\n9X=no\nG=a\\ b\n";
        assert_eq!(
            parse_env_file(text),
            pairs(&[
                ("A", "1"),
                ("B", "spaced value"),
                ("C", "single $x"),
                ("D", "dq \"in\" $HOME"),
                ("E", "linecontinued"),
                ("F", "multi\nline"),
                ("G", "a b"),
            ])
        );
    }
}
