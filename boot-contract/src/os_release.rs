//! Reading the image version from `/etc/os-release`.

/// The value of `key` in os-release text (shell-like `KEY=value` lines;
/// values may be single- or double-quoted; `#` starts a comment line).
/// The last assignment wins, as it would in a shell.
pub fn value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == key {
            found = Some(unquote(v.trim()));
        }
    }
    found
}

/// The OS version to report: `IMAGE_VERSION`, else `VERSION_ID`.
pub fn image_version(text: &str) -> Option<String> {
    value(text, "IMAGE_VERSION")
        .filter(|v| !v.is_empty())
        .or_else(|| value(text, "VERSION_ID").filter(|v| !v.is_empty()))
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_string();
    }
    if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        // Inside double quotes, a backslash escapes `"`, `\`, `$` and `` ` ``.
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(&next) = chars.peek() {
                    if matches!(next, '"' | '\\' | '$' | '`') {
                        out.push(next);
                        chars.next();
                        continue;
                    }
                }
            }
            out.push(c);
        }
        return out;
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_version_wins_over_version_id() {
        let text = "NAME=\"Slipway\"\nVERSION_ID=12\nIMAGE_VERSION=\"1.4.0\"\n";
        assert_eq!(image_version(text).as_deref(), Some("1.4.0"));
    }

    #[test]
    fn falls_back_to_version_id() {
        assert_eq!(
            image_version("ID=slipway\nVERSION_ID='2025.1'\n").as_deref(),
            Some("2025.1")
        );
        assert_eq!(
            image_version("IMAGE_VERSION=\"\"\nVERSION_ID=3\n").as_deref(),
            Some("3")
        );
        assert_eq!(image_version("ID=slipway\n"), None);
        assert_eq!(image_version(""), None);
    }

    #[test]
    fn quotes_comments_and_spaces() {
        let text =
            "# IMAGE_VERSION=commented\n  IMAGE_VERSION = \"a \\\"b\\\" c\"  \nBROKEN LINE\n";
        assert_eq!(value(text, "IMAGE_VERSION").as_deref(), Some("a \"b\" c"));
        assert_eq!(
            value("X=unterminated\"", "X").as_deref(),
            Some("unterminated\"")
        );
        assert_eq!(value("X=1\nX=2", "X").as_deref(), Some("2"));
    }
}
