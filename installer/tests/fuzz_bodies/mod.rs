//! The body of the installer's fuzz target, shared by `../../fuzz/`
//! (cargo-fuzz, its own workspace, includes this file with `#[path]`) and
//! `../fuzz_smoke.rs` (regression inputs, seeds and their mutations in the
//! ordinary test suite). It takes arbitrary bytes, must never panic,
//! checks what the installer relies on, and returns whether the input was
//! accepted. Dependencies: `slipway_install` and `crc32fast` (for
//! `gpt_disk.rs`), which both users name.

#[path = "../../../boot-contract/tests/fuzz_support/gpt_disk.rs"]
pub mod gpt_disk;

/// `parse_table` on the first bytes of the disk `gpt_disk` describes (the
/// installer reads the table of its source, which may come over HTTP,
/// and of every disk it might write to): a table read names each used
/// entry once, and each lies on sectors that compute (`offset`, `end`,
/// and the size the refusals print).
pub fn gpt_read(data: &[u8]) -> bool {
    let Some((disk, image_len)) = gpt_disk::gpt_disk(data) else {
        return false;
    };
    let head = disk.read_at(0, image_len.min(1 << 20) as usize);
    let Ok((_, parts)) = slipway_install::source::parse_table(&head) else {
        return false;
    };
    let mut numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), parts.len(), "an entry twice");
    for p in &parts {
        assert!(p.first_lba <= p.last_lba, "{p:?}");
        assert!(p.end() > p.offset(), "{p:?}");
        let _ = p.end() - p.offset();
    }
    true
}
