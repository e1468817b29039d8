//! The binary, run as an ordinary process (as it is here), refuses to act as
//! an init but answers --help and --version.

use std::process::Command;

fn init() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slipway-init"))
}

#[test]
fn refuses_to_run_when_not_pid1() {
    let out = init().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not running as PID 1"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_and_version() {
    let out = init().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("slipway-init {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = init().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("slipway.root=PARTUUID="));
}
