//! Starting one command of a service: its environment, user, working
//! directory, output pipe and cgroup.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ioctl::{spawn_as_service, ListenExec, ServiceSetup};
use crate::units::{self, Max, Resource, ResourceLimit};

/// A user from `/etc/passwd` (and the group from `Group=` or its primary
/// one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// Finds `user` (a name or a number) in `<root>/etc/passwd`, and `group`
/// (a name or number) in `<root>/etc/group`.
pub fn lookup_account(root: &Path, user: &str, group: Option<&str>) -> Result<Account, String> {
    // Not read_to_string: this runs in PID 1 at each start, and a FIFO
    // put at /etc/passwd (the /etc overlay is writable) would block it.
    let passwd = units::read_regular(&root.join("etc/passwd"))
        .map_err(|e| format!("reading /etc/passwd: {e}"))?;
    let mut account = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            match f.as_slice() {
                [name, _, uid, gid, _, home, shell, ..] => Some(Account {
                    name: (*name).to_string(),
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: (*home).to_string(),
                    shell: (*shell).to_string(),
                }),
                _ => None,
            }
        })
        .find(|a| a.name == user || user.parse() == Ok(a.uid))
        .ok_or_else(|| format!("User={user}: no such user in /etc/passwd"))?;
    if let Some(group) = group {
        account.gid = lookup_group(root, group)?;
    }
    Ok(account)
}

/// A group's number from `<root>/etc/group` (a number is taken as is).
pub fn lookup_group(root: &Path, group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let text = units::read_regular(&root.join("etc/group"))
        .map_err(|e| format!("reading /etc/group: {e}"))?;
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(group)).then(|| f.nth(1)?.parse().ok())?
        })
        .ok_or_else(|| format!("Group={group}: no such group in /etc/group"))
}

/// Everything needed to start one command.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub path: &'a str,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: Option<PathBuf>,
    pub account: Option<&'a Account>,
    /// Written end of the unit's output pipe (stdout and stderr).
    pub output: &'a OwnedFd,
    /// The unit's `cgroup.procs`, opened by the parent.
    pub cgroup_procs: Option<&'a File>,
    /// `OOMScoreAdjust=`.
    pub oom_score_adjust: Option<i32>,
    /// `Limit…=`.
    pub limits: &'a [ResourceLimit],
    /// Listening sockets passed as fds 3, 4, … (`LISTEN_FDS` and
    /// `LISTEN_FDNAMES` are expected in `env`; `LISTEN_PID` is set).
    pub listen_fds: Vec<std::os::fd::RawFd>,
}

/// The kernel's ceiling for open files (`fs.nr_open`): what
/// `LimitNOFILE=infinity` means, as in systemd, since `RLIM_INFINITY`
/// is refused for it.
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// `Limit…=` as `(resource, soft, hard)` for `setrlimit(2)`, infinity
/// resolved.
pub fn rlimits(limits: &[ResourceLimit]) -> Vec<(Resource, u64, u64)> {
    limits
        .iter()
        .map(|l| {
            let infinity = match l.resource {
                Resource::Nofile => nr_open(),
                Resource::Nproc | Resource::Core => libc::RLIM_INFINITY,
            };
            let value = |m: Max| match m {
                Max::Infinity => infinity,
                Max::Value(v) => v,
            };
            (l.resource, value(l.soft), value(l.hard))
        })
        .collect()
}

/// Forks and execs; returns the pid. An exec failure (missing binary, no
/// permission) is reported here, not as an exit status: std's spawn
/// waits for the exec through a close-on-exec pipe.
pub fn spawn(s: &Spawn<'_>) -> Result<i32, String> {
    let mut cmd = Command::new(s.path);
    let mut args = s.argv.iter();
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .env_clear()
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let out = s
        .output
        .try_clone()
        .map_err(|e| format!("output pipe: {e}"))?;
    let err = s
        .output
        .try_clone()
        .map_err(|e| format!("output pipe: {e}"))?;
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    cmd.current_dir(s.cwd.as_deref().unwrap_or(Path::new("/")));
    // The user is switched in the hook, after the limits and the OOM
    // score (std's `Command::uid` would switch before the hooks run).
    spawn_as_service(
        &mut cmd,
        ServiceSetup {
            cgroup_procs: s.cgroup_procs.map(|f| f.as_raw_fd()),
            oom_score_adj: s.oom_score_adjust.map(|n| n.to_string().into_bytes()),
            rlimits: rlimits(s.limits),
            ids: s.account.map(|a| (a.uid, a.gid)),
        },
    );
    let mut listen = if s.listen_fds.is_empty() {
        None
    } else {
        let mut l = ListenExec::new(s.path, s.argv, s.env, s.listen_fds.clone())?;
        l.install(&mut cmd);
        Some(l)
    };
    let child = cmd
        .spawn()
        .map_err(|e| format!("exec {}: {}", s.path, describe_io(&e)))?;
    if let Some(l) = &mut listen {
        l.wait_exec()
            .map_err(|e| format!("exec {}: {}", s.path, crate::error::errno_text(e)))?;
    }
    // PID 1 reaps with waitpid(-1); the handle is not needed.
    i32::try_from(child.id()).map_err(|_| "pid out of range".to_string())
}

/// `No such file or directory`, without std's ` (os error 2)`.
fn describe_io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => crate::error::errno_text(nix::errno::Errno::from_raw(n)).to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ncore:x:500:500:Core:/home/core:/bin/sh\nbad line\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\ncore:x:500:\ndocker:x:233:core\n",
        )
        .unwrap();
        dir
    }

    /// A FIFO at /etc/passwd or /etc/group (no writer) is refused at
    /// once, naming the file, instead of blocking PID 1's start of the
    /// service for good.
    #[test]
    fn a_fifo_as_the_account_files_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        for f in ["passwd", "group"] {
            nix::unistd::mkfifo(&etc.join(f), nix::sys::stat::Mode::S_IRWXU).unwrap();
        }
        let root = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send((
                lookup_account(&root, "core", None),
                lookup_group(&root, "docker"),
            ));
        });
        let (user, group) = rx
            .recv_timeout(std::time::Duration::from_secs(2))
            .expect("the lookup blocked");
        assert_eq!(
            user,
            Err("reading /etc/passwd: a FIFO, not a regular file: refusing to read it".into())
        );
        assert_eq!(
            group,
            Err("reading /etc/group: a FIFO, not a regular file: refusing to read it".into())
        );
    }

    #[test]
    fn accounts_by_name_or_number() {
        let r = root();
        let core = lookup_account(r.path(), "core", None).unwrap();
        assert_eq!(
            (core.uid, core.gid, core.home.as_str()),
            (500, 500, "/home/core")
        );
        assert_eq!(
            lookup_account(r.path(), "500", Some("docker")).unwrap().gid,
            233
        );
        assert_eq!(
            lookup_account(r.path(), "nobody", None).unwrap_err(),
            "User=nobody: no such user in /etc/passwd"
        );
        assert_eq!(
            lookup_group(r.path(), "wheel").unwrap_err(),
            "Group=wheel: no such group in /etc/group"
        );
        assert_eq!(lookup_group(r.path(), "77").unwrap(), 77);
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let e = spawn(&Spawn {
            path: "/nonexistent/prog",
            argv: &["prog".to_string()],
            env: &[],
            cwd: None,
            account: None,
            output: &w,
            cgroup_procs: None,
            oom_score_adjust: None,
            limits: &[],
            listen_fds: Vec::new(),
        })
        .unwrap_err();
        assert_eq!(e, "exec /nonexistent/prog: No such file or directory");
    }

    #[test]
    fn a_missing_program_with_listen_fds_is_a_clear_error_too() {
        // The own execve path (for LISTEN_PID) reports through its pipe.
        let (_r, w) = nix::unistd::pipe().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = spawn(&Spawn {
            path: "/nonexistent/prog",
            argv: &["prog".to_string()],
            env: &[("LISTEN_FDS".into(), "1".into())],
            cwd: None,
            account: None,
            output: &w,
            cgroup_procs: None,
            oom_score_adjust: None,
            limits: &[],
            listen_fds: vec![listener.as_raw_fd()],
        })
        .unwrap_err();
        assert_eq!(e, "exec /nonexistent/prog: No such file or directory");
    }

    #[test]
    fn listen_fds_arrive_as_3_with_listen_pid_of_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (_r, w) = nix::unistd::pipe().unwrap();
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let script = format!(
            "echo $$ $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES > {o}; ls -l /proc/$$/fd/3 /proc/$$/fd/4 >> {o} 2>&1",
            o = out.display()
        );
        let pid = spawn(&Spawn {
            path: "/bin/sh",
            argv: &["sh".to_string(), "-c".to_string(), script],
            env: &[
                ("LISTEN_FDS".into(), "2".into()),
                ("LISTEN_FDNAMES".into(), "a:b".into()),
                ("LISTEN_PID".into(), "stale".into()),
            ],
            cwd: None,
            account: None,
            output: &w,
            cgroup_procs: None,
            oom_score_adjust: None,
            limits: &[],
            listen_fds: vec![b.as_raw_fd(), a.as_raw_fd()],
        })
        .unwrap();
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(first, format!("{pid} {pid} 2 a:b"));
        assert_eq!(text.matches("socket:").count(), 2, "{text}");
    }
}
