//! The partition layout of a Slipway disk (ARCHITECTURE.md, "On-disk layout"):
//! which partitions exist, their types, sizes, flags and where they start.
//!
//! Everything here is pure arithmetic so it can be unit-tested and shared by
//! the builder (which writes the table) and, later, the update engine (which
//! reads it back).

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const MIB: u64 = 1024 * 1024;
/// Logical block size the image is laid out for (every disk we target).
pub const SECTOR: u64 = 512;
/// Partitions start on 1 MiB boundaries, the first one at 1 MiB.
pub const ALIGN: u64 = MIB;

/// Discoverable Partitions Specification type GUIDs.
pub mod types {
    pub const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    pub const ROOT_X86_64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
    pub const ROOT_VERITY_X86_64: &str = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5";
    pub const VAR: &str = "4d21b016-b534-45c2-a9fb-5c16e091fd2d";
}

/// GPT attribute bit 60: the partition is read-only.
pub const ATTR_READ_ONLY: u64 = 1 << 60;
/// GPT attribute bit 63: tools must not mount it automatically. Our boot
/// chain names the slot explicitly, so nothing should guess one.
pub const ATTR_NO_AUTO: u64 = 1 << 63;

/// Which partition of the layout this is; one per partition of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Esp,
    Root(Slot),
    Verity(Slot),
    Var,
}

/// One of the two root slots (defined with the rest of the boot contract).
pub use slipway_boot_contract::Slot;

impl Role {
    /// The GPT partition name (label).
    pub fn label(self) -> String {
        match self {
            Role::Esp => "esp".into(),
            Role::Root(s) => format!("root-{}", s.letter()),
            Role::Verity(s) => format!("root-{}-verity", s.letter()),
            Role::Var => "var".into(),
        }
    }

    pub fn type_guid(self) -> Uuid {
        let s = match self {
            Role::Esp => types::ESP,
            Role::Root(_) => types::ROOT_X86_64,
            Role::Verity(_) => types::ROOT_VERITY_X86_64,
            Role::Var => types::VAR,
        };
        // The constants above are valid GUIDs; a unit test parses every one.
        Uuid::parse_str(s).unwrap_or(Uuid::nil())
    }

    pub fn attributes(self) -> u64 {
        match self {
            Role::Root(_) | Role::Verity(_) => ATTR_READ_ONLY | ATTR_NO_AUTO,
            Role::Esp | Role::Var => 0,
        }
    }
}

/// Partition sizes in bytes, as a board asks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub esp: u64,
    pub root: u64,
    pub verity: u64,
    /// The size `var` has in the image; the init grows it at first boot.
    pub var: u64,
}

/// One placed partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// GPT entry number, from 1.
    pub number: u32,
    pub role: Role,
    pub label: String,
    pub type_guid: Uuid,
    pub uuid: Uuid,
    /// Byte offset of the first byte on the disk.
    pub offset: u64,
    pub size: u64,
    pub attributes: u64,
}

impl Placed {
    pub fn first_lba(&self) -> u64 {
        self.offset / SECTOR
    }

    pub fn last_lba(&self) -> u64 {
        (self.offset + self.size) / SECTOR - 1
    }
}

/// The whole disk: where every partition lies and how big the disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub disk_guid: Uuid,
    pub partitions: Vec<Placed>,
    /// Total size of the disk image in bytes.
    pub disk_size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("partition {label}: size {size} bytes is not a positive multiple of 1 MiB")]
    BadSize { label: String, size: u64 },
}

/// The layout's order; the entry number is the index plus one.
pub const ORDER: [Role; 6] = [
    Role::Esp,
    Role::Root(Slot::A),
    Role::Verity(Slot::A),
    Role::Root(Slot::B),
    Role::Verity(Slot::B),
    Role::Var,
];

impl Layout {
    /// Places the partitions one after another from 1 MiB, each aligned to
    /// 1 MiB, and leaves 1 MiB at the end for the backup GPT (which needs
    /// 33 sectors). `identity` names the image (board, version, build); the
    /// disk and partition UUIDs are derived from it so builds reproduce.
    pub fn plan(sizes: Sizes, identity: &str) -> Result<Layout, LayoutError> {
        let mut offset = ALIGN;
        let mut partitions = Vec::with_capacity(ORDER.len());
        for (i, role) in ORDER.iter().copied().enumerate() {
            let size = match role {
                Role::Esp => sizes.esp,
                Role::Root(_) => sizes.root,
                Role::Verity(_) => sizes.verity,
                Role::Var => sizes.var,
            };
            let label = role.label();
            if size == 0 || size % ALIGN != 0 {
                return Err(LayoutError::BadSize { label, size });
            }
            partitions.push(Placed {
                number: i as u32 + 1,
                role,
                uuid: derived_uuid(identity, &label),
                label,
                type_guid: role.type_guid(),
                offset,
                size,
                attributes: role.attributes(),
            });
            offset += size;
        }
        Ok(Layout {
            disk_guid: derived_uuid(identity, "disk"),
            partitions,
            disk_size: offset + ALIGN,
        })
    }

    pub fn get(&self, role: Role) -> &Placed {
        // `plan` always places every role of ORDER, so the lookup succeeds;
        // index by position to avoid an Option nobody could handle.
        let i = ORDER.iter().position(|r| *r == role).unwrap_or(0);
        &self.partitions[i]
    }
}

/// A UUID that looks like a random (version 4) one but is a hash of the
/// image identity and a name, so the same build gives the same UUIDs.
pub fn derived_uuid(identity: &str, name: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"slipway-uuid\0");
    h.update(identity.as_bytes());
    h.update(b"\0");
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> Sizes {
        Sizes {
            esp: 256 * MIB,
            root: 1024 * MIB,
            verity: 64 * MIB,
            var: 64 * MIB,
        }
    }

    #[test]
    fn type_guids_parse() {
        for role in ORDER {
            assert_ne!(role.type_guid(), Uuid::nil(), "{role:?}");
        }
    }

    #[test]
    fn partitions_are_aligned_contiguous_and_in_design_order() {
        let l = Layout::plan(sizes(), "x").unwrap();
        let labels: Vec<_> = l.partitions.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "esp",
                "root-a",
                "root-a-verity",
                "root-b",
                "root-b-verity",
                "var"
            ]
        );
        assert_eq!(l.partitions[0].offset, MIB);
        for w in l.partitions.windows(2) {
            assert_eq!(w[0].offset + w[0].size, w[1].offset);
            assert_eq!(w[1].offset % ALIGN, 0);
        }
        let last = l.partitions.last().unwrap();
        assert_eq!(l.disk_size, last.offset + last.size + MIB);
        assert_eq!(l.get(Role::Root(Slot::B)).label, "root-b");
    }

    #[test]
    fn root_slots_are_read_only_and_no_auto() {
        let l = Layout::plan(sizes(), "x").unwrap();
        let a = l.get(Role::Root(Slot::A));
        assert_eq!(a.attributes, (1 << 60) | (1 << 63));
        assert_eq!(l.get(Role::Esp).attributes, 0);
    }

    #[test]
    fn uuids_are_derived_from_identity() {
        let a = Layout::plan(sizes(), "board-1.0").unwrap();
        let b = Layout::plan(sizes(), "board-1.0").unwrap();
        let c = Layout::plan(sizes(), "board-1.1").unwrap();
        assert_eq!(a, b);
        assert_ne!(a.disk_guid, c.disk_guid);
        let uuids: std::collections::HashSet<_> = a.partitions.iter().map(|p| p.uuid).collect();
        assert_eq!(uuids.len(), 6);
        assert_eq!(a.disk_guid.get_version_num(), 4);
    }

    #[test]
    fn unaligned_size_is_refused_with_the_label() {
        let mut s = sizes();
        s.verity = MIB + 1;
        let err = Layout::plan(s, "x").unwrap_err();
        assert!(
            err.to_string().starts_with("partition root-a-verity:"),
            "{err}"
        );
    }
}
