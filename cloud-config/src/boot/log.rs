//! `/var/log/cloud-config.log`: every line goes there as it happens (a run
//! killed half-way still leaves its story), and `say` lines also to the
//! console.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

pub const LOG: &str = "/var/log/cloud-config.log";

/// Only root reads the log: commands' output lands in it, and `runcmd`
/// lines often carry tokens or passwords.
const LOG_MODE: u32 = 0o600;

pub(super) struct Log {
    file: Option<std::fs::File>,
}

impl Log {
    /// Opens (creates 0600, never wider for a moment) and marks the run.
    pub(super) fn open(heading: &str) -> Log {
        let file = std::fs::create_dir_all("/var/log")
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(LOG_MODE)
                    .open(LOG)
            })
            .and_then(|f| {
                // A log from an older image may have been created 0644.
                f.set_permissions(std::fs::Permissions::from_mode(LOG_MODE))?;
                Ok(f)
            })
            .map_err(|e| println!("slipway: cloud-config: opening {LOG}: {e}"))
            .ok();
        let mut log = Log { file };
        log.note(&format!("--- {heading}"));
        log
    }

    /// A log that writes only to the console (tests).
    #[cfg(test)]
    pub(super) fn console_only() -> Log {
        Log { file: None }
    }

    /// To the console (our stdout, which the init or the unit connects to
    /// it) and the log.
    pub(super) fn say(&mut self, line: &str) {
        println!("slipway: cloud-config: {line}");
        self.note(line);
    }

    /// Only to the log file.
    pub(super) fn note(&mut self, line: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Where commands write their output: the log file itself, so that a
    /// command leaving a daemon behind holds no pipe we would wait on.
    pub(super) fn output(&self) -> std::process::Stdio {
        match self.file.as_ref().and_then(|f| f.try_clone().ok()) {
            Some(f) => f.into(),
            None => std::process::Stdio::null(),
        }
    }
}
