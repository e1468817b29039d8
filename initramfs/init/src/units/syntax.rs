//! The file syntax (`systemd.syntax(7)`): `[Section]` headers, `Key=value`
//! assignments, `#`/`;` comment lines, a trailing backslash joining the
//! next line (the backslash becomes a space; comment lines inside a
//! continuation are skipped). Keys and sections are case-sensitive.

/// One meaningful line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Section {
        name: String,
        line: usize,
    },
    Assign {
        key: String,
        value: String,
        line: usize,
    },
    /// A line that could not be understood; the line is ignored.
    Bad {
        message: String,
        line: usize,
    },
}

/// Splits a unit file into items; line numbers are 1-based and name the
/// first line of a continued assignment.
pub(crate) fn parse(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut cont: Option<(usize, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let l = raw.trim();
        if cont.is_some() && l.starts_with(['#', ';']) {
            continue;
        }
        if cont.is_none() && (l.is_empty() || l.starts_with(['#', ';'])) {
            continue;
        }
        let trailing = l.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            let body = l.strip_suffix('\\').unwrap_or(l);
            match &mut cont {
                Some((_, acc)) => {
                    acc.push_str(body);
                    acc.push(' ');
                }
                None => cont = Some((lineno, format!("{body} "))),
            }
            continue;
        }
        let (start, full) = match cont.take() {
            Some((start, mut acc)) => {
                acc.push_str(l);
                (start, acc)
            }
            None => (lineno, l.to_string()),
        };
        items.push(line_item(full.trim(), start));
    }
    if let Some((start, acc)) = cont {
        items.push(line_item(acc.trim(), start));
    }
    items
}

fn line_item(l: &str, line: usize) -> Item {
    if l.starts_with('[') {
        return match l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(name) if !name.is_empty() && !name.contains(['[', ']']) => Item::Section {
                name: name.to_string(),
                line,
            },
            _ => Item::Bad {
                message: format!("invalid section header {l:?}, ignoring the section"),
                line,
            },
        };
    }
    match l.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Item::Assign {
            key: k.trim().to_string(),
            value: v.trim().to_string(),
            line,
        },
        Some(_) => Item::Bad {
            message: format!("missing key name in {l:?}, ignoring line"),
            line,
        },
        None => Item::Bad {
            message: format!("missing '=' in {l:?}, ignoring line"),
            line,
        },
    }
}

/// systemd's booleans (`1 yes y true t on`, `0 no n false f off`, any
/// case).
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(key: &str, value: &str, line: usize) -> Item {
        Item::Assign {
            key: key.into(),
            value: value.into(),
            line,
        }
    }

    #[test]
    fn sections_comments_continuations() {
        let text = "# head\n[Unit]\r\nDescription = hello world  \n; c\n\n[Service]\nExecStart=/bin/echo a \\\n  # comment inside\n  b \\\n  c\nEnvironment=X=1\\\\\nKey=\nTail=x \\";
        assert_eq!(
            parse(text),
            vec![
                Item::Section {
                    name: "Unit".into(),
                    line: 2
                },
                assign("Description", "hello world", 3),
                Item::Section {
                    name: "Service".into(),
                    line: 6
                },
                assign("ExecStart", "/bin/echo a  b  c", 7),
                assign("Environment", "X=1\\\\", 11),
                assign("Key", "", 12),
                assign("Tail", "x", 13),
            ]
        );
    }

    #[test]
    fn bad_lines() {
        let items = parse("[Unit\nnoequals\n=value\n[]\n[A]x\n");
        let lines: Vec<usize> = items
            .iter()
            .map(|i| match i {
                Item::Bad { line, .. } => *line,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, [1, 2, 3, 4, 5]);
        assert!(
            matches!(&items[1], Item::Bad { message, .. } if message == "missing '=' in \"noequals\", ignoring line")
        );
    }
}
