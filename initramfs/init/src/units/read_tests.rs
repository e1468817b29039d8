//! The unit loader reads only regular files of at most 1 MiB (through
//! [`crate::sys::regular::read_regular`]): a unit file or drop-in that is
//! a FIFO, or too large, is an error or warning naming it. Each test's
//! FIFO has no writer: reading it the ordinary way would block the test
//! forever, so passing means PID 1 would not block.

use crate::sys::regular::test_support::{fifo, quickly};
use crate::sys::regular::MAX_FILE;
use crate::units::{load_unit, Context, LoadState};
use std::path::PathBuf;

const SYSTEM: &str = "etc/systemd/system";

fn load(root: PathBuf, name: &'static str) -> (crate::units::Unit, Vec<String>) {
    quickly(move || {
        let (u, d) = load_unit(&root, name, &Context::default());
        (u, d.iter().map(|d| d.to_string()).collect())
    })
}

#[test]
fn a_fifo_as_the_unit_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fifo(&dir.path().join(SYSTEM).join("x.service"));
    let (u, d) = load(dir.path().to_path_buf(), "x.service");
    assert!(
        matches!(&u.load, LoadState::Error(m) if m.contains("a FIFO")),
        "{:?}",
        u.load
    );
    assert_eq!(
        d,
        [
            "/etc/systemd/system/x.service: error: cannot read the unit file: \
          a FIFO, not a regular file: refusing to read it"
        ]
    );
}

#[test]
fn a_link_to_a_fifo_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join(SYSTEM);
    fifo(&dir.path().join("srv/pipe"));
    std::fs::create_dir_all(&sys).unwrap();
    std::os::unix::fs::symlink("/srv/pipe", sys.join("x.service")).unwrap();
    let (u, _) = load(dir.path().to_path_buf(), "x.service");
    assert!(matches!(&u.load, LoadState::Error(m) if m.contains("a FIFO")));
}

#[test]
fn a_fifo_as_a_drop_in_is_a_warning_naming_it_and_the_unit_loads() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join(SYSTEM);
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::write(sys.join("x.service"), "[Service]\nExecStart=/bin/x\n").unwrap();
    fifo(&sys.join("x.service.d/10-pipe.conf"));
    std::fs::write(
        sys.join("x.service.d/20-env.conf"),
        "[Service]\nEnvironment=A=1\n",
    )
    .unwrap();
    let (u, d) = load(dir.path().to_path_buf(), "x.service");
    assert_eq!(u.load, LoadState::Loaded);
    assert_eq!(
        d,
        [
            "/etc/systemd/system/x.service.d/10-pipe.conf: warning: cannot read the drop-in, \
          ignoring: a FIFO, not a regular file: refusing to read it"
        ]
    );
    // The other drop-in still applies.
    assert_eq!(
        u.service.unwrap().environment,
        [("A".to_string(), "1".to_string())]
    );
}

#[test]
fn an_oversize_unit_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join(SYSTEM);
    std::fs::create_dir_all(&sys).unwrap();
    let mut text = "[Service]\nExecStart=/bin/x\n".to_string();
    while text.len() as u64 <= MAX_FILE {
        text.push_str("# padding padding padding padding padding padding\n");
    }
    std::fs::write(sys.join("big.service"), &text).unwrap();
    // Exactly the limit is still read.
    let at_limit = usize::try_from(MAX_FILE).unwrap();
    std::fs::write(sys.join("edge.service"), text.get(..at_limit).unwrap()).unwrap();

    let (u, d) = load(dir.path().to_path_buf(), "big.service");
    assert!(matches!(u.load, LoadState::Error(_)), "{:?}", u.load);
    assert_eq!(
        d,
        [
            "/etc/systemd/system/big.service: error: cannot read the unit file: \
          larger than 1024 KiB, the most PID 1 reads of a configuration file: \
          refusing to read it"
        ]
    );
    let (u, d) = load(dir.path().to_path_buf(), "edge.service");
    assert_eq!(u.load, LoadState::Loaded, "{d:?}");
}
