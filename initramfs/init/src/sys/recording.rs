//! A [`Sys`] that records calls instead of making them, for tests.
//!
//! Files, directories and symlinks live in an in-memory map; the clock is fake
//! and only moves when the code under test sleeps, so a 60 s timeout takes no
//! time. Changes can be scheduled for later ("the partition appears after
//! 2 s"), and any call can be made to fail with an errno. A node can also
//! be served from a real file ([`RecordingSys::add_host_file`]), read as
//! [`super::LinuxSys`] reads it: a real FIFO there is refused the same way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::signal::Signal;

use super::regular::{read_regular_file, Unreadable, DIRECTORY, MAX_FILE};
use super::seam::Sys;
use super::types::{describe_mount, DmTarget, ReadSeek, Reaped, Reboot, SysResult};

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Link(String),
    Dir,
    /// Read from this real path, as `LinuxSys` reads.
    Host(PathBuf),
}

/// The recording test double.
#[derive(Debug, Default)]
pub struct RecordingSys {
    /// Every call that changes something, in order, e.g.
    /// `mount devtmpfs /dev devtmpfs nosuid,mode=0755`.
    pub calls: Vec<String>,
    nodes: BTreeMap<String, Node>,
    later: Vec<(Duration, String, Node)>,
    clock: Duration,
    boot_time: Duration,
    failures: BTreeMap<String, Errno>,
    reaps: VecDeque<Reaped>,
    /// What `dm_version` answers; 4.48.0 if unset.
    dm_version: Option<[u32; 3]>,
    /// The minor the next `dm_create` returns (as the kernel, from 0).
    dm_next_minor: u32,
    /// How many times `random` was called, to vary its bytes.
    random_calls: u8,
    /// What successive `run_program` calls return; then `Some(0)`.
    exit_statuses: VecDeque<Option<i32>>,
}

/// The major number `dm_create` reports (the kernel picks one at boot).
pub const DM_MAJOR: u32 = 253;

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl RecordingSys {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_file(&mut self, path: &str, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.nodes
            .insert(path.to_string(), Node::File(contents.into()));
        self
    }

    pub fn add_dir(&mut self, path: &str) -> &mut Self {
        self.nodes.insert(path.to_string(), Node::Dir);
        self
    }

    pub fn add_link(&mut self, path: &str, target: &str) -> &mut Self {
        self.nodes
            .insert(path.to_string(), Node::Link(target.to_string()));
        self
    }

    /// `path` is read from the real file `host`, as [`super::LinuxSys`]
    /// reads it: a FIFO or device there is refused without blocking.
    pub fn add_host_file(&mut self, path: &str, host: &Path) -> &mut Self {
        self.nodes
            .insert(path.to_string(), Node::Host(host.to_path_buf()));
        self
    }

    /// Removes a node and everything under it.
    pub fn remove(&mut self, path: &str) -> &mut Self {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.nodes
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        self
    }

    /// The file appears once the fake clock reaches `at`.
    pub fn add_file_at(&mut self, at: Duration, path: &str, contents: impl Into<Vec<u8>>) {
        self.later
            .push((at, path.to_string(), Node::File(contents.into())));
    }

    /// The symlink appears once the fake clock reaches `at`.
    pub fn add_link_at(&mut self, at: Duration, path: &str, target: &str) {
        self.later
            .push((at, path.to_string(), Node::Link(target.to_string())));
    }

    /// The device-mapper interface version `dm_version` reports.
    pub fn set_dm_version(&mut self, version: [u32; 3]) {
        self.dm_version = Some(version);
    }

    pub fn set_boot_time(&mut self, boot_time: Duration) {
        self.boot_time = boot_time;
    }

    /// The fake monotonic clock.
    pub fn clock(&self) -> Duration {
        self.clock
    }

    /// Makes the call recorded as `call` (e.g. `finit_module /lib/x.ko`)
    /// fail with `errno`. The call is still recorded.
    pub fn fail(&mut self, call: &str, errno: Errno) -> &mut Self {
        self.failures.insert(call.to_string(), errno);
        self
    }

    /// What successive `run_program` calls return (`None`: timed out).
    pub fn script_exits(&mut self, statuses: impl IntoIterator<Item = Option<i32>>) {
        self.exit_statuses.extend(statuses);
    }

    /// What successive `reap` calls return; after the script, `NoChildren`.
    pub fn script_reaps(&mut self, reaps: impl IntoIterator<Item = Reaped>) {
        self.reaps.extend(reaps);
    }

    /// The lines written to one terminal.
    pub fn written_to(&self, tty: &str) -> Vec<String> {
        let prefix = format!("write {tty}: ");
        self.calls
            .iter()
            .filter_map(|c| c.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// The recorded calls, without the short sleeps of polling loops.
    pub fn calls_without_polling(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| !(c.starts_with("sleep ") && c.ends_with("ms")))
            .cloned()
            .collect()
    }

    fn record(&mut self, call: String) -> SysResult<()> {
        let failure = self.failures.get(&call).copied();
        self.calls.push(call);
        match failure {
            Some(errno) => Err(errno),
            None => Ok(()),
        }
    }

    fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn has_children(&self, path: &str) -> bool {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.nodes.keys().any(|k| k.starts_with(&prefix))
    }
}

impl Sys for RecordingSys {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()> {
        self.record(describe_mount(source, target, fstype, flags, data))
    }

    fn umount(&mut self, target: &str) -> SysResult<()> {
        self.record(format!("umount {target}"))
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()> {
        self.record(format!("mkdir {path} {mode:04o}"))?;
        if self.exists(path) {
            return Err(Errno::EEXIST);
        }
        self.nodes.insert(path.to_string(), Node::Dir);
        Ok(())
    }

    fn set_dir_mode_owner(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> SysResult<()> {
        self.record(format!("set_dir_mode_owner {path} {mode:04o} {uid}:{gid}"))?;
        match self.node(path) {
            Some(Node::Dir) => Ok(()),
            // O_DIRECTORY|O_NOFOLLOW: Linux says ENOTDIR for a link too.
            Some(Node::Link(_) | Node::File(_) | Node::Host(_)) => Err(Errno::ENOTDIR),
            None if self.has_children(path) => Ok(()),
            None => Err(Errno::ENOENT),
        }
    }

    fn finit_module(&mut self, path: &str) -> SysResult<()> {
        self.record(format!("finit_module {path}"))
    }

    fn chdir(&mut self, path: &str) -> SysResult<()> {
        self.record(format!("chdir {path}"))
    }

    fn chroot(&mut self, path: &str) -> SysResult<()> {
        self.record(format!("chroot {path}"))
    }

    fn execv(&mut self, path: &str, argv: &[&str]) -> SysResult<()> {
        self.record(format!("execv {path} {argv:?}"))
    }

    fn reboot(&mut self, how: Reboot) -> SysResult<()> {
        let how = match how {
            Reboot::Restart => "RB_AUTOBOOT",
            Reboot::PowerOff => "RB_POWER_OFF",
        };
        self.record(format!("reboot {how}"))
    }

    fn set_ctrl_alt_del(&mut self, enabled: bool) -> SysResult<()> {
        let how = if enabled {
            "RB_ENABLE_CAD"
        } else {
            "RB_DISABLE_CAD"
        };
        self.record(format!("reboot {how}"))
    }

    fn sleep(&mut self, duration: Duration) {
        self.calls
            .push(format!("sleep {}", format_duration(duration)));
        self.clock += duration;
        let now = self.clock;
        let (due, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.later = pending;
        for (_, path, node) in due {
            self.nodes.insert(path, node);
        }
    }

    fn now(&mut self) -> Duration {
        self.clock
    }

    fn boot_time(&mut self) -> Duration {
        self.boot_time
    }

    fn read_file(&mut self, path: &str) -> SysResult<Vec<u8>> {
        match self.node(path) {
            Some(Node::File(data)) => Ok(data.clone()),
            Some(Node::Host(host)) => read_regular_file(host, None).map_err(Unreadable::errno),
            Some(Node::Dir) => Err(Errno::EISDIR),
            Some(Node::Link(_)) => Err(Errno::EINVAL),
            None if self.has_children(path) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn read_config(&mut self, path: &str) -> Result<Vec<u8>, Unreadable> {
        match self.node(path) {
            Some(Node::Host(host)) => read_regular_file(host, Some(MAX_FILE)),
            Some(Node::File(data)) if u64::try_from(data.len()).map_or(true, |n| n > MAX_FILE) => {
                Err(Unreadable::TooLarge)
            }
            Some(Node::Dir) => Err(Unreadable::NotRegular(DIRECTORY)),
            None if self.has_children(path) => Err(Unreadable::NotRegular(DIRECTORY)),
            _ => self.read_file(path).map_err(Unreadable::Errno),
        }
    }

    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>> {
        if let Some(Node::File(_) | Node::Host(_)) = self.node(path) {
            return Err(Errno::ENOTDIR);
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let names: BTreeSet<String> = self
            .nodes
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() && self.node(path).is_none() {
            return Err(Errno::ENOENT);
        }
        Ok(names.into_iter().collect())
    }

    fn read_link(&mut self, path: &str) -> SysResult<String> {
        match self.node(path) {
            Some(Node::Link(target)) => Ok(target.clone()),
            Some(_) => Err(Errno::EINVAL),
            None if self.has_children(path) => Err(Errno::EINVAL),
            None => Err(Errno::ENOENT),
        }
    }

    fn exists(&mut self, path: &str) -> bool {
        self.node(path).is_some() || self.has_children(path)
    }

    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()> {
        self.record(format!("symlink {path} -> {target}"))?;
        if self.exists(path) {
            return Err(Errno::EEXIST);
        }
        self.nodes
            .insert(path.to_string(), Node::Link(target.to_string()));
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> SysResult<()> {
        self.record(format!("rename {from} {to}"))?;
        if self.exists(to) {
            return Err(Errno::EEXIST);
        }
        // The node and everything under it move.
        let moved: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| *k == from || k.starts_with(&format!("{from}/")))
            .cloned()
            .collect();
        if moved.is_empty() {
            return Err(Errno::ENOENT);
        }
        for key in moved {
            if let Some(node) = self.nodes.remove(&key) {
                let rest = key.get(from.len()..).unwrap_or_default();
                self.nodes.insert(format!("{to}{rest}"), node);
            }
        }
        Ok(())
    }

    fn open_block(&mut self, path: &str) -> SysResult<Box<dyn ReadSeek>> {
        let data = self.read_file(path)?;
        Ok(Box::new(Cursor::new(data)))
    }

    fn write_tty(&mut self, path: &str, text: &str) -> SysResult<()> {
        if !self.exists(path) {
            return Err(Errno::ENOENT);
        }
        self.record(format!("write {path}: {}", text.trim_end_matches('\n')))
    }

    fn drain_tty(&mut self, path: &str, _limit: Duration) -> SysResult<()> {
        if !self.exists(path) {
            return Err(Errno::ENOENT);
        }
        self.record(format!("drain {path}"))
    }

    fn set_hostname(&mut self, name: &str) -> SysResult<()> {
        self.record(format!("sethostname {name}"))
    }

    fn write_block(&mut self, path: &str, offset: u64, data: &[u8]) -> SysResult<()> {
        self.record(format!(
            "write_block {path} at {offset}: {} bytes",
            data.len()
        ))?;
        let Some(Node::File(contents)) = self.nodes.get_mut(path) else {
            return Err(Errno::ENOENT);
        };
        let start = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let end = start + data.len();
        if end > contents.len() {
            // A block device does not grow.
            return Err(Errno::ENOSPC);
        }
        if let Some(region) = contents.get_mut(start..end) {
            region.copy_from_slice(data);
        }
        Ok(())
    }

    fn resize_partition(
        &mut self,
        path: &str,
        number: u32,
        start: u64,
        length: u64,
    ) -> SysResult<()> {
        self.record(format!(
            "resize_partition {path} {number} start={start} length={length}"
        ))
    }

    fn resize_ext4(&mut self, mount_point: &str, blocks: u64) -> SysResult<()> {
        self.record(format!("resize_ext4 {mount_point} {blocks}"))
    }

    fn random(&mut self, buf: &mut [u8]) -> SysResult<()> {
        self.record(format!("getrandom {}", buf.len()))?;
        // Deterministic, and different on every call.
        self.random_calls += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(17).wrapping_add(self.random_calls);
        }
        Ok(())
    }

    fn write_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()> {
        self.record(format!(
            "write_file {path} {mode:04o}: {}",
            String::from_utf8_lossy(data).trim_end()
        ))?;
        self.nodes
            .insert(path.to_string(), Node::File(data.to_vec()));
        Ok(())
    }

    fn run_program(
        &mut self,
        path: &str,
        args: &[&str],
        timeout: Duration,
    ) -> SysResult<Option<i32>> {
        self.record(format!(
            "run {path} {} (limit {})",
            args.join(" "),
            format_duration(timeout)
        ))?;
        Ok(self.exit_statuses.pop_front().unwrap_or(Some(0)))
    }

    fn kill(&mut self, pid: i32, signal: Signal) -> SysResult<()> {
        self.record(format!("kill {pid} {}", signal.as_str()))
    }

    fn reap(&mut self) -> Reaped {
        self.reaps.pop_front().unwrap_or(Reaped::NoChildren)
    }

    fn sync(&mut self) {
        self.calls.push("sync".to_string());
    }

    fn dm_version(&mut self) -> SysResult<[u32; 3]> {
        self.record("dm_version".to_string())?;
        Ok(self.dm_version.unwrap_or([4, 48, 0]))
    }

    fn dm_create(&mut self, name: &str, read_only: bool) -> SysResult<(u32, u32)> {
        self.record(format!("dm_create {name}{}", ro(read_only)))?;
        let minor = self.dm_next_minor;
        self.dm_next_minor += 1;
        Ok((DM_MAJOR, minor))
    }

    fn dm_load_table(
        &mut self,
        name: &str,
        read_only: bool,
        targets: &[DmTarget],
    ) -> SysResult<()> {
        let table: Vec<String> = targets.iter().map(ToString::to_string).collect();
        self.record(format!(
            "dm_load {name}{}: {}",
            ro(read_only),
            table.join("; ")
        ))
    }

    fn dm_resume(&mut self, name: &str) -> SysResult<()> {
        self.record(format!("dm_resume {name}"))
    }

    fn dm_remove(&mut self, name: &str) -> SysResult<()> {
        self.record(format!("dm_remove {name}"))
    }
}

fn ro(read_only: bool) -> &'static str {
    if read_only {
        " ro"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_files_dirs_and_links() {
        let mut sys = RecordingSys::new();
        sys.add_file("/sys/class/block/vda2/partition", "2\n")
            .add_link("/sys/class/block/vda", "../../devices/x/block/vda");
        assert_eq!(
            sys.read_dir("/sys/class/block").unwrap(),
            vec!["vda", "vda2"]
        );
        assert!(sys.exists("/sys/class/block/vda2"));
        assert_eq!(sys.read_file("/nope"), Err(Errno::ENOENT));
        assert_eq!(
            sys.read_link("/sys/class/block/vda").unwrap(),
            "../../devices/x/block/vda"
        );
    }

    #[test]
    fn clock_moves_only_when_sleeping_and_releases_scheduled_files() {
        let mut sys = RecordingSys::new();
        sys.add_file_at(Duration::from_secs(2), "/late", "x");
        assert!(!sys.exists("/late"));
        sys.sleep(Duration::from_millis(1500));
        assert!(!sys.exists("/late"));
        sys.sleep(Duration::from_millis(500));
        assert!(sys.exists("/late"));
        assert_eq!(sys.now(), Duration::from_secs(2));
        assert_eq!(sys.calls, vec!["sleep 1500ms", "sleep 500ms"]);
    }

    #[test]
    fn device_mapper_calls_are_recorded_readably() {
        let mut sys = RecordingSys::new();
        assert_eq!(sys.dm_version(), Ok([4, 48, 0]));
        assert_eq!(sys.dm_create("root", true), Ok((DM_MAJOR, 0)));
        let target = DmTarget {
            start: 0,
            length: 8,
            target_type: "zero".into(),
            params: String::new(),
        };
        sys.fail("dm_resume root", Errno::EINVAL);
        assert_eq!(sys.dm_load_table("root", true, &[target]), Ok(()));
        assert_eq!(sys.dm_resume("root"), Err(Errno::EINVAL));
        assert_eq!(sys.dm_remove("root"), Ok(()));
        assert_eq!(sys.dm_create("other", false), Ok((DM_MAJOR, 1)));
        assert_eq!(
            sys.calls,
            vec![
                "dm_version",
                "dm_create root ro",
                "dm_load root ro: 0 8 zero ",
                "dm_resume root",
                "dm_remove root",
                "dm_create other",
            ]
        );
    }

    #[test]
    fn injected_failures_are_recorded_and_returned() {
        let mut sys = RecordingSys::new();
        sys.fail("finit_module /m.ko", Errno::ENOEXEC);
        assert_eq!(sys.finit_module("/m.ko"), Err(Errno::ENOEXEC));
        assert_eq!(sys.finit_module("/n.ko"), Ok(()));
        assert_eq!(sys.calls, vec!["finit_module /m.ko", "finit_module /n.ko"]);
    }
}
