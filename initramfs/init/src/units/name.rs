//! Unit names (`prefix[@instance].suffix`) and specifiers (`%n`, `%i`, …).

use super::Context;

/// Unit types systemd knows; only `service` and `target` can be started
/// here, the others load as [`super::LoadState::Unsupported`]. One list
/// with `slipctl`, which adds `.service` to a name without a type.
pub(crate) use slipway_control::UNIT_TYPES;

/// A parsed unit name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitName {
    /// The whole name, `foo@bar.service`.
    pub full: String,
    /// Before the `@` (or the suffix), `foo`.
    pub prefix: String,
    /// After the `@`: `Some("bar")`; `Some("")` for a template
    /// (`foo@.service`); `None` without `@`.
    pub instance: Option<String>,
    /// The type, `service`.
    pub suffix: String,
}

impl UnitName {
    /// Checks and splits a unit name, as systemd's `unit_name_is_valid()`.
    pub fn parse(name: &str) -> Result<UnitName, String> {
        let bad = |why: &str| format!("invalid unit name {name:?}: {why}");
        if name.is_empty() || name.len() > 255 {
            return Err(bad("empty or longer than 255 bytes"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
        {
            return Err(bad(&format!("character {c:?} not allowed")));
        }
        let (stem, suffix) = name.rsplit_once('.').ok_or_else(|| bad("no type suffix"))?;
        if !UNIT_TYPES.contains(&suffix) {
            return Err(bad(&format!("unknown unit type {suffix:?}")));
        }
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => {
                if i.contains('@') {
                    return Err(bad("more than one '@'"));
                }
                (p, Some(i.to_string()))
            }
            None => (stem, None),
        };
        if prefix.is_empty() {
            return Err(bad("empty name before the suffix or '@'"));
        }
        Ok(UnitName {
            full: name.to_string(),
            prefix: prefix.to_string(),
            instance,
            suffix: suffix.to_string(),
        })
    }

    /// `foo@.service` for a template or an instance of one.
    pub fn template(&self) -> Option<String> {
        self.instance
            .as_ref()
            .map(|_| format!("{}@.{}", self.prefix, self.suffix))
    }

    /// A template without an instance (`foo@.service`).
    pub fn is_template(&self) -> bool {
        self.instance.as_deref() == Some("")
    }

    /// The name without the type suffix (`%N`).
    fn without_suffix(&self) -> &str {
        self.full
            .strip_suffix(self.suffix.as_str())
            .and_then(|s| s.strip_suffix('.'))
            .unwrap_or(&self.full)
    }
}

/// systemd's `unit_name_unescape()`: `-` is `/`, `\xNN` a byte.
pub(crate) fn unescape(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b == b'-' {
            bytes.push(b'/');
            continue;
        }
        if b == b'\\' {
            if let Some((b'x', hex)) = rest.split_first() {
                let decoded = hex
                    .get(..2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let (Some(v), Some(after)) = (decoded, hex.get(2..)) {
                    bytes.push(v);
                    rest = after;
                    continue;
                }
            }
        }
        bytes.push(b);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Expands specifiers in `s` for unit `name`. Unknown specifiers are left
/// as written and reported (one message each) in the returned warnings.
pub(crate) fn expand_specifiers(s: &str, name: &UnitName, ctx: &Context) -> (String, Vec<String>) {
    let mut out = String::with_capacity(s.len());
    let mut warnings = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            warnings.push("lone '%' at the end of the value, left as is".to_string());
            out.push('%');
            break;
        };
        let instance = name.instance.clone().unwrap_or_default();
        let value = match spec {
            '%' => "%".to_string(),
            'n' => name.full.clone(),
            'N' => name.without_suffix().to_string(),
            'p' => name.prefix.clone(),
            'P' => unescape(&name.prefix),
            'i' => instance,
            'I' => unescape(&instance),
            'j' => last_dash(&name.prefix).to_string(),
            'J' => unescape(last_dash(&name.prefix)),
            'f' => {
                let raw = match name.instance.as_deref() {
                    Some(i) if !i.is_empty() => i,
                    _ => name.prefix.as_str(),
                };
                format!("/{}", unescape(raw).trim_start_matches('/'))
            }
            'H' => ctx.hostname.clone(),
            'l' => ctx
                .hostname
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string(),
            'm' => ctx.machine_id.clone(),
            'b' => ctx.boot_id.clone(),
            't' => "/run".to_string(),
            'T' => "/tmp".to_string(),
            'V' => "/var/tmp".to_string(),
            'S' => "/var/lib".to_string(),
            'C' => "/var/cache".to_string(),
            'L' => "/var/log".to_string(),
            'E' => "/etc".to_string(),
            _ => {
                warnings.push(format!("unknown specifier %{spec}, left as is"));
                out.push('%');
                out.push(spec);
                continue;
            }
        };
        out.push_str(&value);
    }
    (out, warnings)
}

fn last_dash(prefix: &str) -> &str {
    prefix.rsplit('-').next().unwrap_or(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            hostname: "node1.example.com".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            boot_id: "fedcba9876543210fedcba9876543210".into(),
        }
    }

    #[test]
    fn names() {
        let n = UnitName::parse("getty@tty1.service").unwrap();
        assert_eq!(n.prefix, "getty");
        assert_eq!(n.instance.as_deref(), Some("tty1"));
        assert_eq!(n.suffix, "service");
        assert_eq!(n.template().as_deref(), Some("getty@.service"));
        assert!(!n.is_template());
        assert!(UnitName::parse("getty@.service").unwrap().is_template());
        let plain = UnitName::parse("multi-user.target").unwrap();
        assert_eq!(plain.template(), None);
        for bad in [
            "",
            "foo",
            "foo.bar",
            "a b.service",
            "@x.service",
            "a@b@c.service",
            ".service",
        ] {
            assert!(UnitName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn specifiers() {
        let n = UnitName::parse("web-app@var-lib-x\\x2dy.service").unwrap();
        let (s, w) = expand_specifiers("%n|%N|%p|%i|%I|%P|%j|%f|%%|%t", &n, &ctx());
        assert!(w.is_empty());
        assert_eq!(
            s,
            "web-app@var-lib-x\\x2dy.service|web-app@var-lib-x\\x2dy|web-app|var-lib-x\\x2dy|var/lib/x-y|web/app|app|/var/lib/x-y|%|/run"
        );
        let (s, _) = expand_specifiers("%H %l %m %b", &n, &ctx());
        assert_eq!(
            s,
            "node1.example.com node1 0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210"
        );
    }

    #[test]
    fn unknown_specifier_kept_and_warned() {
        let n = UnitName::parse("a.service").unwrap();
        let (s, w) = expand_specifiers("x%qy %i.", &n, &ctx());
        assert_eq!(s, "x%qy .");
        assert_eq!(w, ["unknown specifier %q, left as is"]);
        let (s, w) = expand_specifiers("50%", &n, &ctx());
        assert_eq!(s, "50%");
        assert_eq!(w.len(), 1);
    }
}
