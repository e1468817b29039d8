//! Every board in `board/` is pinned: its `inputs.lock` is in the tree and
//! pins each package its `board.toml` names, so two builds of a commit take
//! the same packages (a missing or partial lock is written by the first
//! build from whatever the archive offers that day).

use xtask::board::{list, lock_path, Board};
use xtask::inputs::{read_pins, unpinned, Locked, Role};
use xtask::paths::boards_dir;

#[test]
fn every_board_has_a_lock_that_pins_what_its_board_file_names() {
    let dir = boards_dir();
    let names = list(&dir).unwrap();
    assert!(names.len() >= 2, "boards found: {names:?}");
    let mut problems = Vec::new();
    for name in &names {
        let board = Board::load(&dir, name).unwrap();
        let lock = lock_path(&dir, name);
        if !lock.is_file() {
            problems.push(format!(
                "{}: missing (run `cargo xtask build-image --board {name}` and commit it)",
                lock.display()
            ));
            continue;
        }
        let pins = read_pins(&lock).unwrap();
        problems.extend(
            unpinned(&board, &pins)
                .into_iter()
                .map(|p| format!("{}: {p}", lock.display())),
        );
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_lock_missing_a_pin_or_holding_a_stale_one_is_reported() {
    let dir = boards_dir();
    let board = Board::load(&dir, "generic-x86_64").unwrap();
    let pins = read_pins(&lock_path(&dir, "generic-x86_64")).unwrap();
    assert!(unpinned(&board, &pins).is_empty());

    // Without the kernel's pin and one extra's.
    let extra = board.packages.extra[0].clone();
    let partial: Vec<Locked> = pins
        .iter()
        .filter(|l| l.role != Role::Kernel && l.requested != extra)
        .cloned()
        .collect();
    assert_eq!(
        unpinned(&board, &partial),
        [
            format!("kernel.package `{}` is not pinned", board.kernel.package),
            format!("packages.extra `{extra}` is not pinned"),
        ]
    );

    // The kernel pinned under another name (the qemu board's kernel) is
    // not the board's kernel; a dependency is not an extra.
    let mut renamed = pins.clone();
    for l in &mut renamed {
        if l.role == Role::Kernel {
            l.requested = "linux-image-cloud-amd64".into();
        }
        if l.requested == extra {
            l.role = Role::Dependency;
        }
    }
    assert_eq!(unpinned(&board, &renamed).len(), 2);

    // An extra the board no longer lists, and a pin without a hash.
    let mut stale = pins.clone();
    stale.push(Locked {
        role: Role::Extra,
        requested: "nginx".into(),
        package: "nginx".into(),
        version: "1.22.1-9".into(),
        sha256: String::new(),
    });
    let got = unpinned(&board, &stale);
    assert_eq!(
        got,
        [
            "`nginx` is pinned as an extra package but packages.extra does not list it",
            "the pin of `nginx` has no version or no sha256",
        ],
        "{got:#?}"
    );
}
