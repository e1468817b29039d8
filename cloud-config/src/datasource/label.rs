//! Filesystem labels from a device's first bytes, so the init can find
//! seed disks (`cidata`, `config-2`) without blkid.
//!
//! - **ISO 9660**: the primary volume descriptor is sector 16 (byte 32768):
//!   type 1, `CD001` at 32769, version 1; the volume identifier is the 32
//!   bytes at 32768 + 40, padded with spaces.
//! - **FAT12/16/32**: the boot sector's extended BPB holds an 11-byte volume
//!   label, at 0x2B on FAT12/16 and 0x47 on FAT32 (FAT32 is told apart by a
//!   zero 16-bit sectors-per-FAT at 0x16), present when the extended boot
//!   signature (0x29, at 0x26 or 0x42) is.
//!
//! FAT also records the label as a volume-label entry in the root
//! directory, and that entry is the authoritative one (blkid prefers it;
//! tools that relabel a mounted volume may update only it). Reading it
//! means following the root directory's cluster chain; the boot sector is
//! enough here because every tool that makes seeds (mkfs.fat -n,
//! cloud-localds, our own FAT32 writer) writes the same label to both.
//!
//! An ISO image with an MBR in front (isohybrid) is found by its volume
//! descriptor, which is checked first.

/// How many bytes from the start of a device [`filesystem_label`] needs:
/// the ISO 9660 primary volume descriptor ends at 32768 + 2048. (FAT needs
/// only the first 512.) Callers may pass more.
pub const LABEL_PROBE_BYTES: usize = ISO_PVD + 2048;

const ISO_PVD: usize = 16 * 2048;

/// The filesystem a label was found on (what to pass to mount(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Vfat,
    Iso9660,
}

/// The filesystem type and label, from the first bytes of a device (see
/// [`LABEL_PROBE_BYTES`]). `None` if neither ISO 9660 nor FAT is
/// recognised, or the volume has no label (FAT's `NO NAME`).
pub fn filesystem_label(head: &[u8]) -> Option<(FsKind, String)> {
    if let Some(label) = iso9660_label(head) {
        return Some((FsKind::Iso9660, label));
    }
    fat_label(head).map(|label| (FsKind::Vfat, label))
}

/// `cidata` in either case (cloud-init accepts both; FAT tools often
/// upper-case labels).
pub fn is_nocloud_label(label: &str) -> bool {
    label == "cidata" || label == "CIDATA"
}

/// `config-2` in either case.
pub fn is_configdrive_label(label: &str) -> bool {
    label == "config-2" || label == "CONFIG-2"
}

fn iso9660_label(head: &[u8]) -> Option<String> {
    let pvd = head.get(ISO_PVD..ISO_PVD + 2048)?;
    if pvd.first() != Some(&1) || pvd.get(1..6) != Some(b"CD001") || pvd.get(6) != Some(&1) {
        return None;
    }
    trimmed(pvd.get(40..72)?)
}

fn fat_label(head: &[u8]) -> Option<String> {
    let sector = head.get(..512)?;
    let byte = |i: usize| sector.get(i).copied().unwrap_or(0);
    let u16_at = |i: usize| u16::from_le_bytes([byte(i), byte(i + 1)]);
    // A jump instruction, the 0x55AA signature, and a sane BPB.
    if !matches!(byte(0), 0xEB | 0xE9) || byte(510) != 0x55 || byte(511) != 0xAA {
        return None;
    }
    let bytes_per_sector = u16_at(11);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) {
        return None;
    }
    let sectors_per_cluster = byte(13);
    if sectors_per_cluster == 0 || !sectors_per_cluster.is_power_of_two() || byte(16) == 0 {
        return None;
    }
    let fat32 = u16_at(22) == 0;
    let (signature, label_at) = if fat32 { (0x42, 0x47) } else { (0x26, 0x2B) };
    if byte(signature) != 0x29 {
        return None;
    }
    let label = trimmed(sector.get(label_at..label_at + 11)?)?;
    if label == "NO NAME" {
        return None;
    }
    Some(label)
}

/// Text with trailing spaces and NULs removed; `None` if empty or not
/// printable ASCII.
fn trimmed(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let bytes = bytes.get(..end)?;
    if bytes.is_empty() || !bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}
