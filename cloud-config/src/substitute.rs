//! `$public_ipv4` and friends: filled in from metadata before parsing, as
//! coreos-cloudinit does, so a config can name the machine's addresses.

/// Values for the substitution variables; a variable without a value is
/// left as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions {
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv6: Option<String>,
    pub private_ipv6: Option<String>,
}

impl Substitutions {
    /// The value for a variable name (without `$`). Values containing a
    /// line break are ignored: they would move every later line and make
    /// positions in findings wrong (and an address never has one).
    fn value(&self, name: &str) -> Option<&str> {
        let v = match name {
            "public_ipv4" => &self.public_ipv4,
            "private_ipv4" => &self.private_ipv4,
            "public_ipv6" => &self.public_ipv6,
            "private_ipv6" => &self.private_ipv6,
            _ => return None,
        };
        v.as_deref().filter(|v| !v.contains(['\n', '\r']))
    }
}

/// Replace `$name` for the known names; `\$name` becomes a literal `$name`.
/// Unknown `$names` and variables without a value stay untouched.
pub fn substitute(text: &str, subs: &Substitutions) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(i);
        let name_len = from_dollar[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(from_dollar.len() - 1);
        let name = &from_dollar[1..1 + name_len];
        let known = matches!(
            name,
            "public_ipv4" | "private_ipv4" | "public_ipv6" | "private_ipv6"
        );
        match (before.strip_suffix('\\'), known) {
            // Escaped: drop the backslash, keep the variable literally.
            (Some(kept), true) => {
                out.push_str(kept);
                out.push_str(&from_dollar[..1 + name_len]);
            }
            _ => {
                out.push_str(before);
                match subs.value(name).filter(|_| known) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&from_dollar[..1 + name_len]),
                }
            }
        }
        rest = &from_dollar[1 + name_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs() -> Substitutions {
        Substitutions {
            public_ipv4: Some("203.0.113.7".into()),
            private_ipv4: Some("10.0.0.7".into()),
            public_ipv6: None,
            private_ipv6: Some("fd00::7\n".into()),
        }
    }

    #[test]
    fn replaces_known_names() {
        assert_eq!(
            substitute("a: http://$private_ipv4:2379,$public_ipv4", &subs()),
            "a: http://10.0.0.7:2379,203.0.113.7"
        );
    }

    #[test]
    fn escape_and_unknown_and_missing() {
        assert_eq!(
            substitute(r"\$public_ipv4 $HOME $public_ipv6 $public_ipv4x $", &subs()),
            "$public_ipv4 $HOME $public_ipv6 $public_ipv4x $"
        );
        // A backslash before an unknown name is not an escape of ours.
        assert_eq!(substitute(r"\$HOME", &subs()), r"\$HOME");
    }

    #[test]
    fn value_with_newline_is_ignored() {
        assert_eq!(substitute("$private_ipv6", &subs()), "$private_ipv6");
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(substitute("é $private_ipv4 ü", &subs()), "é 10.0.0.7 ü");
    }
}
