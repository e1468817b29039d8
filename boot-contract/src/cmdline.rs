//! The kernel command line: `slipway.slot=`, `slipway.root=` and the
//! dm-verity keys. The builder and the update engine write a slot's line
//! with [`BootArgs::render`]; the init (and the engine, to know which slot
//! booted) read it with [`Cmdline`] and [`BootArgs::parse`].
//!
//! Parsing has two layers: [`Cmdline`] splits `/proc/cmdline` the way the
//! kernel does (whitespace, double quotes), and [`BootArgs`] holds the typed
//! values stage 1 needs, with one clear error per missing or bad key.
//!
//! Verity is on unless `slipway.verity=off`: a missing key must never turn
//! into an unverified boot, so without that switch all four verity keys are
//! required.

use std::fmt;

use uuid::Uuid;

pub use crate::slot::Slot;

pub const SLOT_KEY: &str = "slipway.slot";
pub const ROOT_KEY: &str = "slipway.root";
/// `off` boots the root unverified (a developer switch).
pub const VERITY_KEY: &str = "slipway.verity";
pub const ROOTHASH_KEY: &str = "slipway.roothash";
pub const VERITY_HASH_KEY: &str = "slipway.verity_hash";
pub const VERITY_SALT_KEY: &str = "slipway.verity_salt";
pub const VERITY_BLOCKS_KEY: &str = "slipway.verity_blocks";

/// The size of a data (and hash) block: the builder formats the hash tree
/// with 4096-byte blocks, `slipway.verity_blocks` counts them.
pub const VERITY_BLOCK_SIZE: u64 = 4096;
/// Hex digits of a sha256 digest (the root hash), and of the salt the
/// builder writes.
const SHA256_HEX_LEN: usize = 64;

/// A bad or missing `slipway.*` parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("missing {0}= on the kernel command line")]
    Missing(&'static str),
    #[error("{SLOT_KEY}={0}: expected a or b")]
    BadSlot(String),
    #[error("missing {0}= on the kernel command line (or {VERITY_KEY}=off to boot unverified)")]
    MissingVerity(&'static str),
    #[error("{key}={value}: expected PARTUUID=<uuid>")]
    BadRoot { key: &'static str, value: String },
    #[error("{key}={value}: not a valid partition uuid")]
    BadPartUuid { key: &'static str, value: String },
    #[error("{VERITY_KEY}={0}: expected off (or on)")]
    BadVerity(String),
    #[error("{key}={value}: expected {SHA256_HEX_LEN} hex characters ({what})")]
    BadHex {
        key: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("{VERITY_BLOCKS_KEY}={0}: not a number")]
    BadBlocks(String),
    #[error("{VERITY_BLOCKS_KEY}={0}: must be at least 1")]
    NoBlocks(String),
    #[error("{VERITY_BLOCKS_KEY}={0}: too large")]
    TooManyBlocks(String),
    #[error(
        "the command line {0:?} has a control character: a boot entry's options are one \
         line of printable text"
    )]
    BaseControl(String),
    #[error(
        "the command line {0:?} has a double quote: quotes regroup what follows them, so \
         the slot's own parameters could be read differently"
    )]
    BaseQuote(String),
    #[error(
        "the command line sets {0}: the slipway.* parameters come only from the slot \
         (a board or a release cannot name a slot or turn verity off)"
    )]
    BaseKey(String),
}

/// Checks the part of a command line that comes from a board or a signed
/// manifest (`base` in [`BootArgs::render`]) before it goes into a boot
/// entry: printable text (no `\r`, newline or other control character,
/// which would end or split the entry's `options` line), no double quote
/// (the kernel's quoting would regroup the slot's own parameters after
/// it), and no `slipway.` parameter: those come only from the slot's
/// [`BootArgs`], so neither a board nor a release can name another slot's
/// root or turn verity off.
pub fn check_base(base: &str) -> Result<(), CmdlineError> {
    if base.chars().any(char::is_control) {
        return Err(CmdlineError::BaseControl(base.to_string()));
    }
    if base.contains('"') {
        return Err(CmdlineError::BaseQuote(base.to_string()));
    }
    let parsed = Cmdline::parse(base);
    if let Some((key, value)) = parsed
        .params
        .iter()
        .find(|(k, _)| k.starts_with("slipway."))
    {
        return Err(CmdlineError::BaseKey(match value {
            Some(v) => format!("{key}={v}"),
            None => key.clone(),
        }));
    }
    Ok(())
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
        Slot::from_letter(value).ok_or_else(|| CmdlineError::BadSlot(value.to_string()))
    }

    pub fn root(&self) -> Result<RootSpec, CmdlineError> {
        let value = self.get(ROOT_KEY).ok_or(CmdlineError::Missing(ROOT_KEY))?;
        RootSpec::parse(value)
    }

    /// `Off` only for `slipway.verity=off`; otherwise every verity key.
    pub fn verity(&self) -> Result<Verity, CmdlineError> {
        match self.get(VERITY_KEY) {
            None | Some("on") => {}
            Some("off") => return Ok(Verity::Off),
            Some(other) => return Err(CmdlineError::BadVerity(other.to_string())),
        }
        let get = |key: &'static str| self.get(key).ok_or(CmdlineError::MissingVerity(key));
        let root_hash = HexDigest::parse(ROOTHASH_KEY, get(ROOTHASH_KEY)?, "sha256")?;
        let hash_partition = RootSpec::parse_for(VERITY_HASH_KEY, get(VERITY_HASH_KEY)?)?;
        let salt = HexDigest::parse(VERITY_SALT_KEY, get(VERITY_SALT_KEY)?, "salt")?;
        let data_blocks = parse_blocks(get(VERITY_BLOCKS_KEY)?)?;
        Ok(Verity::On(VerityArgs {
            root_hash,
            hash_partition,
            salt,
            data_blocks,
        }))
    }
}

/// A block count whose size in 512-byte sectors still fits a `u64` (the
/// device-mapper target length, and the kernel's own check in dm-verity).
fn parse_blocks(value: &str) -> Result<u64, CmdlineError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmdlineError::BadBlocks(value.to_string()));
    }
    let blocks: u64 = value
        .parse()
        .map_err(|_| CmdlineError::TooManyBlocks(value.to_string()))?;
    if blocks == 0 {
        return Err(CmdlineError::NoBlocks(value.to_string()));
    }
    if blocks.checked_mul(VERITY_BLOCK_SIZE).is_none() {
        return Err(CmdlineError::TooManyBlocks(value.to_string()));
    }
    Ok(blocks)
}

fn split_param(word: &str) -> (String, Option<String>) {
    match word.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (word.to_string(), None),
    }
}

/// Which partition holds the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSpec {
    /// The GPT unique partition GUID.
    PartUuid(Uuid),
}

impl RootSpec {
    /// The value of `slipway.root=`.
    pub fn parse(value: &str) -> Result<Self, CmdlineError> {
        Self::parse_for(ROOT_KEY, value)
    }

    /// The value of `key` (errors name it), e.g. `slipway.verity_hash=`.
    pub fn parse_for(key: &'static str, value: &str) -> Result<Self, CmdlineError> {
        let bad_root = || CmdlineError::BadRoot {
            key,
            value: value.to_string(),
        };
        let bad_uuid = || CmdlineError::BadPartUuid {
            key,
            value: value.to_string(),
        };
        let (prefix, uuid) = value.split_once('=').ok_or_else(bad_root)?;
        if !prefix.eq_ignore_ascii_case("PARTUUID") {
            return Err(bad_root());
        }
        // Only the hyphenated form: it is what the image builder writes and
        // what `blkid` shows, and rejecting the rest catches typos early.
        if uuid.len() != 36 {
            return Err(bad_uuid());
        }
        Uuid::parse_str(uuid)
            .map(RootSpec::PartUuid)
            .map_err(|_| bad_uuid())
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::PartUuid(uuid) => write!(f, "PARTUUID={}", uuid.hyphenated()),
        }
    }
}

/// A sha256-sized value in lowercase hex (64 digits), as the verity
/// table wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexDigest(String);

impl HexDigest {
    /// `what` says what the value is in the error (`sha256`, `salt`).
    pub fn parse(key: &'static str, value: &str, what: &'static str) -> Result<Self, CmdlineError> {
        if value.len() != SHA256_HEX_LEN || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CmdlineError::BadHex {
                key,
                value: value.to_string(),
                what,
            });
        }
        Ok(HexDigest(value.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, enough to tell two builds apart on a console.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dm-verity parameters the image builder computed for the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityArgs {
    /// `slipway.roothash=`: the sha256 of the hash tree's root block.
    pub root_hash: HexDigest,
    /// `slipway.verity_hash=`: the slot's `root-*-verity` partition.
    pub hash_partition: RootSpec,
    /// `slipway.verity_salt=`.
    pub salt: HexDigest,
    /// `slipway.verity_blocks=`: 4096-byte data blocks covered.
    pub data_blocks: u64,
}

/// Whether the root goes through dm-verity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verity {
    /// `slipway.verity=off`: the partition is mounted as it is.
    Off,
    On(VerityArgs),
}

/// What stage 1 needs from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    pub slot: Slot,
    pub root: RootSpec,
    pub verity: Verity,
}

impl BootArgs {
    pub fn from_cmdline(cmdline: &Cmdline) -> Result<Self, CmdlineError> {
        Ok(BootArgs {
            slot: cmdline.slot()?,
            root: cmdline.root()?,
            verity: cmdline.verity()?,
        })
    }

    pub fn parse(text: &str) -> Result<Self, CmdlineError> {
        Self::from_cmdline(&Cmdline::parse(text))
    }

    /// A slot's whole command line: the board's `base` arguments, then the
    /// slot's own as [`BootArgs::parse`] reads them back. The builder and
    /// the update engine both write entries with it, so an updated slot
    /// boots with the line a freshly built one would. `base` must pass
    /// [`check_base`], or the line is not made.
    pub fn render(&self, base: &str) -> Result<String, CmdlineError> {
        check_base(base)?;
        let mut parts: Vec<String> = Vec::new();
        if !base.trim().is_empty() {
            parts.push(base.trim().to_string());
        }
        parts.push(format!("{SLOT_KEY}={}", self.slot));
        parts.push(format!("{ROOT_KEY}={}", self.root));
        match &self.verity {
            Verity::On(v) => {
                parts.push(format!("{ROOTHASH_KEY}={}", v.root_hash));
                parts.push(format!("{VERITY_HASH_KEY}={}", v.hash_partition));
                parts.push(format!("{VERITY_SALT_KEY}={}", v.salt));
                parts.push(format!("{VERITY_BLOCKS_KEY}={}", v.data_blocks));
            }
            Verity::Off => parts.push(format!("{VERITY_KEY}=off")),
        }
        Ok(parts.join(" "))
    }
}

impl VerityArgs {
    /// The verity parameters as a manifest or the builder holds them
    /// (hex strings, a partition UUID, a block count), checked as the init
    /// will check them: an entry the init would refuse is never written.
    pub fn new(
        root_hash: &str,
        hash_partuuid: Uuid,
        salt: &str,
        data_blocks: u64,
    ) -> Result<VerityArgs, CmdlineError> {
        Ok(VerityArgs {
            root_hash: HexDigest::parse(ROOTHASH_KEY, root_hash, "sha256")?,
            hash_partition: RootSpec::PartUuid(hash_partuuid),
            salt: HexDigest::parse(VERITY_SALT_KEY, salt, "salt")?,
            data_blocks: parse_blocks(&data_blocks.to_string())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81";
    const HASH_UUID: &str = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    const ROOTHASH: &str = "4392a8f0e2c1b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a19080";
    const SALT: &str = "0011223344556677889900aabbccddeeff00112233445566778899aabbccddee";

    /// The four verity keys as the image builder writes them.
    fn verity_keys() -> String {
        format!(
            "slipway.roothash={ROOTHASH} slipway.verity_hash=PARTUUID={HASH_UUID} \
             slipway.verity_salt={SALT} slipway.verity_blocks=1000"
        )
    }

    fn with_keys(extra: &str) -> Result<BootArgs, CmdlineError> {
        BootArgs::parse(&format!(
            "slipway.slot=a slipway.root=PARTUUID={UUID} {} {extra}",
            verity_keys()
        ))
    }

    #[test]
    fn parses_slot_and_root_among_other_parameters() {
        let text = format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0,115200  quiet slipway.slot=b \
             slipway.root=PARTUUID={} rw {}\n",
            UUID.to_uppercase(),
            verity_keys()
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
    fn parses_the_verity_keys() {
        let args = BootArgs::parse(&format!(
            "slipway.slot=a slipway.root=PARTUUID={UUID} \
             slipway.roothash={} slipway.verity_hash=partuuid={} \
             slipway.verity_salt={SALT} slipway.verity_blocks=262144",
            ROOTHASH.to_uppercase(),
            HASH_UUID.to_uppercase()
        ))
        .unwrap();
        let Verity::On(v) = args.verity else {
            panic!("verity off")
        };
        // Lowercase, as the table and the console line show it.
        assert_eq!(v.root_hash.as_str(), ROOTHASH);
        assert_eq!(v.root_hash.short(), "4392a8f0e2c1");
        assert_eq!(v.salt.to_string(), SALT);
        assert_eq!(
            v.hash_partition.to_string(),
            format!("PARTUUID={HASH_UUID}")
        );
        assert_eq!(v.data_blocks, 262_144);
        assert_eq!(
            with_keys("slipway.verity=on").unwrap().verity,
            Verity::On(v_of(&with_keys("").unwrap()))
        );
    }

    fn v_of(args: &BootArgs) -> VerityArgs {
        match &args.verity {
            Verity::On(v) => v.clone(),
            Verity::Off => panic!("verity off"),
        }
    }

    #[test]
    fn verity_off_needs_no_verity_keys_and_ignores_them() {
        let args = BootArgs::parse(&format!(
            "slipway.slot=a slipway.root=PARTUUID={UUID} slipway.verity=off"
        ))
        .unwrap();
        assert_eq!(args.verity, Verity::Off);
        // Appended to a full command line (the boot menu editor), the
        // last word wins and the keys are not even checked.
        let args = BootArgs::parse(&format!(
            "slipway.slot=a slipway.root=PARTUUID={UUID} slipway.roothash=abc slipway.verity=off"
        ))
        .unwrap();
        assert_eq!(args.verity, Verity::Off);
        assert_eq!(
            with_keys("slipway.verity=off slipway.verity=on")
                .unwrap()
                .verity,
            Verity::On(v_of(&with_keys("").unwrap()))
        );
    }

    #[test]
    fn verity_keys_are_required_without_verity_off() {
        let base = format!("slipway.slot=a slipway.root=PARTUUID={UUID}");
        let err = BootArgs::parse(&base).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing slipway.roothash= on the kernel command line \
             (or slipway.verity=off to boot unverified)"
        );
        let keys = verity_keys();
        let words: Vec<&str> = keys.split_whitespace().collect();
        for (i, key) in [
            ROOTHASH_KEY,
            VERITY_HASH_KEY,
            VERITY_SALT_KEY,
            VERITY_BLOCKS_KEY,
        ]
        .into_iter()
        .enumerate()
        {
            let mut others = words.clone();
            others.remove(i);
            let err = BootArgs::parse(&format!("{base} {}", others.join(" "))).unwrap_err();
            assert_eq!(err, CmdlineError::MissingVerity(key));
        }
    }

    #[test]
    fn bad_verity_values_are_named() {
        let err = |extra: &str| with_keys(extra).unwrap_err().to_string();
        assert_eq!(
            err("slipway.roothash=abc"),
            "slipway.roothash=abc: expected 64 hex characters (sha256)"
        );
        assert_eq!(
            err(&format!("slipway.roothash={}", ROOTHASH.replace('a', "g"))),
            format!(
                "slipway.roothash={}: expected 64 hex characters (sha256)",
                ROOTHASH.replace('a', "g")
            )
        );
        assert_eq!(
            err("slipway.verity_salt=-"),
            "slipway.verity_salt=-: expected 64 hex characters (salt)"
        );
        assert_eq!(
            err("slipway.verity_blocks=x"),
            "slipway.verity_blocks=x: not a number"
        );
        assert_eq!(
            err("slipway.verity_blocks=-1"),
            "slipway.verity_blocks=-1: not a number"
        );
        assert_eq!(
            err("slipway.verity_blocks=0"),
            "slipway.verity_blocks=0: must be at least 1"
        );
        assert_eq!(
            err("slipway.verity_blocks=99999999999999999999"),
            "slipway.verity_blocks=99999999999999999999: too large"
        );
        assert_eq!(
            err("slipway.verity_blocks=4503599627370496"),
            "slipway.verity_blocks=4503599627370496: too large"
        );
        assert_eq!(
            with_keys("slipway.verity_blocks=4503599627370495").map(|a| v_of(&a).data_blocks),
            Ok(4_503_599_627_370_495)
        );
        assert_eq!(
            err("slipway.verity_hash=/dev/vda4"),
            "slipway.verity_hash=/dev/vda4: expected PARTUUID=<uuid>"
        );
        assert_eq!(
            err("slipway.verity_hash=PARTUUID=12"),
            "slipway.verity_hash=PARTUUID=12: not a valid partition uuid"
        );
        assert_eq!(
            err("slipway.verity=no"),
            "slipway.verity=no: expected off (or on)"
        );
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

    #[test]
    fn rendered_lines_parse_back() {
        let root = RootSpec::PartUuid(Uuid::parse_str(UUID).unwrap());
        let hash = Uuid::parse_str(HASH_UUID).unwrap();
        for verity in [
            Verity::On(VerityArgs::new(ROOTHASH, hash, SALT, 1000).unwrap()),
            Verity::Off,
        ] {
            for slot in [Slot::A, Slot::B] {
                let args = BootArgs {
                    slot,
                    root,
                    verity: verity.clone(),
                };
                let line = args.render("  console=ttyS0 quiet ").unwrap();
                assert!(
                    line.starts_with("console=ttyS0 quiet slipway.slot="),
                    "{line}"
                );
                assert_eq!(BootArgs::parse(&line), Ok(args.clone()), "{line}");
                assert!(args.render("").unwrap().starts_with("slipway.slot="));
            }
        }
        assert_eq!(
            BootArgs {
                slot: Slot::B,
                root,
                verity: Verity::On(VerityArgs::new(ROOTHASH, hash, SALT, 1000).unwrap()),
            }
            .render("console=ttyS0")
            .unwrap(),
            format!(
                "console=ttyS0 slipway.slot=b slipway.root=PARTUUID={UUID} {}",
                verity_keys()
            )
        );
    }

    #[test]
    fn verity_args_are_checked_as_the_init_checks_them() {
        let hash = Uuid::parse_str(HASH_UUID).unwrap();
        assert!(VerityArgs::new(ROOTHASH, hash, SALT, 1).is_ok());
        // A salt of another length, a hash with a quote, no blocks.
        assert!(VerityArgs::new(ROOTHASH, hash, &SALT[..62], 1).is_err());
        assert!(VerityArgs::new(&format!("\"{}", &ROOTHASH[1..]), hash, SALT, 1).is_err());
        assert!(VerityArgs::new(ROOTHASH, hash, SALT, 0).is_err());
        assert!(VerityArgs::new(ROOTHASH, hash, SALT, u64::MAX).is_err());
    }

    /// What a board or a signed manifest may not put before the slot's own
    /// parameters (ARCHITECTURE.md, "Update order", step 1: no payload can
    /// turn verity off).
    #[test]
    fn a_base_cannot_reach_the_slot_parameters() {
        let args = BootArgs {
            slot: Slot::A,
            root: RootSpec::PartUuid(Uuid::parse_str(UUID).unwrap()),
            verity: Verity::On(
                VerityArgs::new(ROOTHASH, Uuid::parse_str(HASH_UUID).unwrap(), SALT, 9).unwrap(),
            ),
        };
        for ok in [
            "",
            "console=ttyS0,115200 quiet gpt",
            "panic=5 init_on_alloc=1 a=b=c",
        ] {
            assert!(args.render(ok).is_ok(), "{ok:?}");
        }
        for (bad, why) in [
            ("quiet slipway.verity=off", "sets slipway.verity=off"),
            ("slipway.slot=b", "sets slipway.slot=b"),
            ("slipway.root=PARTUUID=x", "sets slipway.root="),
            ("slipway.roothash", "sets slipway.roothash:"),
            ("console=ttyS0\rslipway.verity=off", "control character"),
            ("console=ttyS0\nlinux /evil", "control character"),
            ("a=\"b slipway.verity=off\"", "double quote"),
            ("x\u{7f}", "control character"),
        ] {
            let e = args.render(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // What would happen without the check: the last value wins.
        let sneaky = format!("slipway.verity=off {}", args.render("").unwrap());
        assert_eq!(Cmdline::parse(&sneaky).verity(), Ok(Verity::Off));
    }
}
