//! What one build is, and every value derived from it.
//!
//! A build draws nothing at random: the disk and partition UUIDs, the
//! dm-verity salt, the ESP's volume ID and `/var`'s filesystem UUID all
//! come from the image's identity (OS name, board, version, build ID).
//! Two builds of the same inputs are therefore byte-identical, and two
//! different builds never share a UUID. This type is the one place that
//! knows how each is derived.

use slipway_image::layout::{derived_uuid, Layout, LayoutError, Sizes};
use slipway_image::verity::{params_from_identity, VerityParams};
use uuid::Uuid;

use crate::util::sha256_bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdentity(String);

impl ImageIdentity {
    pub fn new(os_name: &str, board: &str, version: &str, build_id: &str) -> ImageIdentity {
        ImageIdentity(format!("{os_name}-{board}-{version}-{build_id}"))
    }

    /// The partition table, its disk and partition UUIDs derived.
    pub fn layout(&self, sizes: Sizes) -> Result<Layout, LayoutError> {
        Layout::plan(sizes, &self.0)
    }

    /// The dm-verity parameters (the salt) of the partition named `name`.
    pub fn verity_params(&self, name: &str) -> VerityParams {
        params_from_identity(&self.0, name)
    }

    /// A UUID for `what` (e.g. `var-fs`, the filesystem of `/var`).
    pub fn uuid(&self, what: &str) -> Uuid {
        derived_uuid(&self.0, what)
    }

    /// The ESP's FAT volume ID.
    pub fn esp_volume_id(&self) -> u32 {
        let id = sha256_bytes(format!("{}\0esp", self.0).as_bytes());
        id.get(..8)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_derived_value_depends_on_every_field() {
        let base = ImageIdentity::new("Slipway", "qemu-x86_64", "1.0", "abc");
        for other in [
            ImageIdentity::new("Other", "qemu-x86_64", "1.0", "abc"),
            ImageIdentity::new("Slipway", "metal-x86_64", "1.0", "abc"),
            ImageIdentity::new("Slipway", "qemu-x86_64", "1.1", "abc"),
            ImageIdentity::new("Slipway", "qemu-x86_64", "1.0", "abd"),
        ] {
            assert_ne!(base.uuid("var-fs"), other.uuid("var-fs"));
            assert_ne!(base.esp_volume_id(), other.esp_volume_id());
            assert_ne!(base.verity_params("root-a"), other.verity_params("root-a"));
        }
        // And on what it is for; stable for one identity.
        assert_ne!(base.uuid("var-fs"), base.uuid("disk"));
        assert_eq!(base.uuid("var-fs"), base.clone().uuid("var-fs"));
    }
}
