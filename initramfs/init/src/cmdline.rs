//! The kernel command line: `slipway.slot=` and `slipway.root=`.
//!
//! Parsing has two layers: [`Cmdline`] splits `/proc/cmdline` the way the
//! kernel does (whitespace, double quotes), and [`BootArgs`] holds the typed
//! values stage 1 needs, with one clear error per missing or bad key. Later
//! keys (`slipway.verity…`) become fields of `BootArgs`.

use std::fmt;

use uuid::Uuid;

pub const SLOT_KEY: &str = "slipway.slot";
pub const ROOT_KEY: &str = "slipway.root";

/// A bad or missing `slipway.*` parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("missing {0}= on the kernel command line")]
    Missing(&'static str),
    #[error("{SLOT_KEY}={0}: expected a or b")]
    BadSlot(String),
    #[error("{ROOT_KEY}={0}: expected PARTUUID=<uuid>")]
    BadRoot(String),
    #[error("{ROOT_KEY}={0}: not a valid partition uuid")]
    BadPartUuid(String),
}

/// The kernel command line, split into parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: Vec<(String, Option<String>)>,
}

impl Cmdline {
    /// Splits like the kernel's `next_arg`: parameters are separated by
    /// whitespace; double quotes group spaces and are removed
    /// (`a="b c"` and `"a=b c"` both give `a` = `b c`).
    pub fn parse(text: &str) -> Self {
        let mut params = Vec::new();
        let mut current = String::new();
        let mut in_word = false;
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    in_word = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if in_word {
                        params.push(split_param(&current));
                        current.clear();
                        in_word = false;
                    }
                }
                c => {
                    current.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            params.push(split_param(&current));
        }
        Cmdline { params }
    }

    /// The value of the last occurrence of `key` (the kernel's rule: a later
    /// parameter overrides an earlier one). `None` if absent or given
    /// without `=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn slot(&self) -> Result<Slot, CmdlineError> {
        let value = self.get(SLOT_KEY).ok_or(CmdlineError::Missing(SLOT_KEY))?;
        Slot::parse(value)
    }

    pub fn root(&self) -> Result<RootSpec, CmdlineError> {
        let value = self.get(ROOT_KEY).ok_or(CmdlineError::Missing(ROOT_KEY))?;
        RootSpec::parse(value)
    }
}

fn split_param(word: &str) -> (String, Option<String>) {
    match word.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (word.to_string(), None),
    }
}

/// One of the two root slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn parse(value: &str) -> Result<Self, CmdlineError> {
        match value {
            "a" | "A" => Ok(Slot::A),
            "b" | "B" => Ok(Slot::B),
            other => Err(CmdlineError::BadSlot(other.to_string())),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "a",
            Slot::B => "b",
        })
    }
}

/// Which partition holds the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSpec {
    /// The GPT unique partition GUID.
    PartUuid(Uuid),
}

impl RootSpec {
    pub fn parse(value: &str) -> Result<Self, CmdlineError> {
        let (prefix, uuid) = value
            .split_once('=')
            .ok_or_else(|| CmdlineError::BadRoot(value.to_string()))?;
        if !prefix.eq_ignore_ascii_case("PARTUUID") {
            return Err(CmdlineError::BadRoot(value.to_string()));
        }
        // Only the hyphenated form: it is what the image builder writes and
        // what `blkid` shows, and rejecting the rest catches typos early.
        if uuid.len() != 36 {
            return Err(CmdlineError::BadPartUuid(value.to_string()));
        }
        Uuid::parse_str(uuid)
            .map(RootSpec::PartUuid)
            .map_err(|_| CmdlineError::BadPartUuid(value.to_string()))
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::PartUuid(uuid) => write!(f, "PARTUUID={}", uuid.hyphenated()),
        }
    }
}

/// What stage 1 needs from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    pub slot: Slot,
    pub root: RootSpec,
}

impl BootArgs {
    pub fn from_cmdline(cmdline: &Cmdline) -> Result<Self, CmdlineError> {
        Ok(BootArgs {
            slot: cmdline.slot()?,
            root: cmdline.root()?,
        })
    }

    pub fn parse(text: &str) -> Result<Self, CmdlineError> {
        Self::from_cmdline(&Cmdline::parse(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81";

    #[test]
    fn parses_slot_and_root_among_other_parameters() {
        let text = format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0,115200  quiet slipway.slot=b \
             slipway.root=PARTUUID={} rw\n",
            UUID.to_uppercase()
        );
        let args = BootArgs::parse(&text).unwrap();
        assert_eq!(args.slot, Slot::B);
        assert_eq!(
            args.root,
            RootSpec::PartUuid(Uuid::parse_str(UUID).unwrap())
        );
        assert_eq!(args.root.to_string(), format!("PARTUUID={UUID}"));
    }

    #[test]
    fn missing_keys_have_clear_errors() {
        let err = BootArgs::parse("slipway.slot=a console=ttyS0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing slipway.root= on the kernel command line"
        );
        let err = BootArgs::parse(&format!("slipway.root=PARTUUID={UUID}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing slipway.slot= on the kernel command line"
        );
        // A key without a value counts as missing.
        let err =
            BootArgs::parse(&format!("slipway.slot slipway.root=PARTUUID={UUID}")).unwrap_err();
        assert_eq!(err, CmdlineError::Missing(SLOT_KEY));
    }

    #[test]
    fn bad_values_are_named() {
        let err =
            BootArgs::parse(&format!("slipway.slot=c slipway.root=PARTUUID={UUID}")).unwrap_err();
        assert_eq!(err.to_string(), "slipway.slot=c: expected a or b");
        let err = BootArgs::parse("slipway.slot=a slipway.root=/dev/vda2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "slipway.root=/dev/vda2: expected PARTUUID=<uuid>"
        );
        let err = BootArgs::parse("slipway.slot=a slipway.root=PARTUUID=1234").unwrap_err();
        assert_eq!(
            err.to_string(),
            "slipway.root=PARTUUID=1234: not a valid partition uuid"
        );
        let err = BootArgs::parse("slipway.slot= slipway.root=PARTUUID=1234").unwrap_err();
        assert_eq!(err.to_string(), "slipway.slot=: expected a or b");
    }

    #[test]
    fn quotes_spaces_and_repeats() {
        let c = Cmdline::parse("  a=\"x y\"   \"b=c d\"\tslipway.slot=a slipway.slot=b  ");
        assert_eq!(c.get("a"), Some("x y"));
        assert_eq!(c.get("b"), Some("c d"));
        assert_eq!(c.slot(), Ok(Slot::B));
        assert_eq!(c.get("missing"), None);
        assert_eq!(Cmdline::parse(""), Cmdline::default());
        assert_eq!(Cmdline::parse("\n").get(""), None);
    }

    #[test]
    fn partuuid_prefix_is_case_insensitive_and_uuid_too() {
        let r = RootSpec::parse(&format!("partuuid={}", UUID.to_uppercase())).unwrap();
        assert_eq!(r.to_string(), format!("PARTUUID={UUID}"));
    }
}
