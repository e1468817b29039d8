//! The EFI system partition: a FAT32 volume written with `fatfs` straight
//! into its slice of the disk image.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use fatfs::{Date, DateTime, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};
use fscommon::{BufStream, StreamSlice};

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("{image}: ESP: {what}: {source}")]
    Io {
        image: String,
        what: String,
        #[source]
        source: io::Error,
    },
}

/// Fixed timestamps for every directory entry, so the volume reproduces.
#[derive(Debug)]
struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// Converts a Unix time to a FAT date-time (UTC), clamped to FAT's range
/// 1980..=2107.
pub fn fat_time(unix: u64) -> DateTime {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (mut y, mut m, mut d) = civil_from_days(days as i64);
    if y < 1980 {
        (y, m, d) = (1980, 1, 1);
    } else if y > 2107 {
        (y, m, d) = (2107, 12, 31);
    }
    DateTime {
        date: Date {
            year: y as u16,
            month: m as u16,
            day: d as u16,
        },
        time: Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: 0,
        },
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard
/// Hinnant's well-known algorithm, written out because no crate we use has it.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats the ESP at `offset..offset+size` of `image` as FAT32 and writes
/// `files` (paths like `EFI/BOOT/BOOTX64.EFI`, parents created as needed).
pub fn write(
    image: &mut File,
    image_path: &Path,
    offset: u64,
    size: u64,
    volume_id: u32,
    unix_time: u64,
    files: &[(String, Vec<u8>)],
) -> Result<(), EspError> {
    // 2 KiB clusters: 4 KiB would leave a 256 MiB volume under FAT32's
    // minimum of 65525 clusters; fatfs would pick 512 B.
    let volume = Fat32Volume {
        offset,
        size,
        bytes_per_cluster: 2048,
        volume_id,
        label: *b"ESP        ",
    };
    write_fat32(image, image_path, &volume, unix_time, files)
}

/// Where and how [`write_fat32`] formats a volume.
#[derive(Debug, Clone, Copy)]
pub struct Fat32Volume {
    pub offset: u64,
    pub size: u64,
    /// Small enough for at least 65525 clusters (FAT32's minimum).
    pub bytes_per_cluster: u32,
    pub volume_id: u32,
    /// Upper case, space-padded, as FAT stores it (`b"CIDATA     "`).
    pub label: [u8; 11],
}

/// Formats `volume` of `image` as FAT32 and writes `files` into it (paths
/// like `EFI/BOOT/BOOTX64.EFI`, parents created as needed); every time
/// stamp is `unix_time`.
pub fn write_fat32(
    image: &mut File,
    image_path: &Path,
    volume: &Fat32Volume,
    unix_time: u64,
    files: &[(String, Vec<u8>)],
) -> Result<(), EspError> {
    let Fat32Volume {
        offset,
        size,
        bytes_per_cluster,
        volume_id,
        label,
    } = *volume;
    let err = |what: &str| {
        let image = image_path.display().to_string();
        let what = what.to_string();
        move |source| EspError::Io {
            image,
            what,
            source,
        }
    };
    let slice = StreamSlice::new(&mut *image, offset, offset + size).map_err(err("opening"))?;
    // fatfs issues many sector-sized writes; a buffer makes them cheap.
    let mut stream = BufStream::new(slice);
    fatfs::format_volume(
        &mut stream,
        FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(bytes_per_cluster)
            .volume_id(volume_id)
            .volume_label(label),
    )
    .map_err(err("formatting FAT32"))?;

    // The time provider must be 'static; one small leak per build is fine.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_time(unix_time))));
    let fs = FileSystem::new(&mut stream, FsOptions::new().time_provider(time))
        .map_err(err("mounting"))?;
    {
        let root = fs.root_dir();
        for (path, data) in files {
            let mut parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            let Some(name) = parts.pop() else { continue };
            let mut dir = root.clone();
            for part in parts {
                dir = match dir.open_dir(part) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(part).map_err(err(path))?,
                };
            }
            let mut f = dir.create_file(name).map_err(err(path))?;
            f.truncate().map_err(err(path))?;
            f.write_all(data).map_err(err(path))?;
            f.flush().map_err(err(path))?;
        }
    }
    fs.unmount().map_err(err("unmounting"))?;
    crate::fat_fixup::fix_dot_entries(&mut stream).map_err(err("fixing dot entries"))?;
    stream.flush().map_err(err("flushing"))?;
    Ok(())
}

/// Reads one file back from an ESP slice (tests, inspection).
pub fn read_file(image: &mut File, offset: u64, size: u64, path: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let slice = StreamSlice::new(image, offset, offset + size)?;
    let fs = FileSystem::new(BufStream::new(slice), FsOptions::new())?;
    let mut f = fs.root_dir().open_file(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_time_converts_and_clamps() {
        // 2023-11-14 22:13:20 UTC
        let t = fat_time(1_700_000_000);
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        assert_eq!(fat_time(0).date.year, 1980);
    }

    fn esp_image(dir: &Path, files: &[(String, Vec<u8>)]) -> (File, std::path::PathBuf) {
        let path = dir.join("disk");
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        // 260 MiB at a 1 MiB offset: big enough for a valid FAT32.
        f.set_len(261 << 20).unwrap();
        write(
            &mut f,
            &path,
            1 << 20,
            260 << 20,
            0x1234_5678,
            1_700_000_000,
            files,
        )
        .unwrap();
        (f, path)
    }

    #[test]
    fn files_read_back_and_volume_reproduces() {
        let files = vec![
            ("EFI/BOOT/BOOTX64.EFI".to_string(), vec![7u8; 100_000]),
            ("loader/loader.conf".to_string(), b"timeout 0\n".to_vec()),
        ];
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let (mut f1, p1) = esp_image(d1.path(), &files);
        let (_f2, p2) = esp_image(d2.path(), &files);
        let got = read_file(&mut f1, 1 << 20, 260 << 20, "EFI/BOOT/BOOTX64.EFI").unwrap();
        assert_eq!(got, vec![7u8; 100_000]);
        assert_eq!(std::fs::read(p1).unwrap(), std::fs::read(p2).unwrap());
    }

    #[test]
    fn subdirectories_start_with_dot_entries_and_dotdot_of_root_is_zero() {
        use std::io::{Read, Seek, SeekFrom};
        let files = vec![("EFI/BOOT/X.EFI".to_string(), vec![1u8; 10])];
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = esp_image(d.path(), &files);
        let mut boot = [0u8; 512];
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.read_exact(&mut boot).unwrap();
        let bps = u64::from(u16::from_le_bytes([boot[11], boot[12]]));
        let cluster = bps * u64::from(boot[13]);
        let reserved = u64::from(u16::from_le_bytes([boot[14], boot[15]]));
        let fat = u64::from(u32::from_le_bytes([boot[36], boot[37], boot[38], boot[39]]));
        let data = (1 << 20) + (reserved + u64::from(boot[16]) * fat) * bps;
        assert_eq!(cluster, 2048);
        let read_dir = |f: &mut File, c: u64| {
            let mut b = vec![0u8; 128];
            f.seek(SeekFrom::Start(data + (c - 2) * cluster)).unwrap();
            f.read_exact(&mut b).unwrap();
            b
        };
        let root = read_dir(&mut f, 2);
        let efi = root
            .chunks(32)
            .find(|e| &e[..11] == b"EFI        ")
            .unwrap();
        let efi_cluster = u64::from(u16::from_le_bytes([efi[26], efi[27]]));
        let dir = read_dir(&mut f, efi_cluster);
        assert_eq!(&dir[..11], b".          ");
        assert_eq!(&dir[32..43], b"..         ");
        assert_eq!(
            &dir[32 + 26..32 + 28],
            &[0, 0],
            "'..' of a child of the root is 0"
        );
    }
}
