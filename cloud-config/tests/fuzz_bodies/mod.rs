//! The body of cloud-config's fuzz target, shared by `../fuzz/` (cargo-fuzz,
//! libFuzzer) and `../robustness.rs` (mutated fixtures in the ordinary test
//! suite): user-data is whatever anyone with the cloud console writes, and
//! the checker runs on it at every boot.

/// `validate` never panics, and every finding names a line of the input
/// and a column (a syntax error found at the end of the file included).
pub fn user_data(data: &[u8]) {
    let report = cloud_config::validate(data);
    // Lines as YAML counts them: a lone CR breaks a line too.
    let text = String::from_utf8_lossy(data).replace("\r\n", "\n");
    let lines = text.split(['\n', '\r']).count();
    for f in &report.findings {
        assert!(
            f.line >= 1 && f.line <= lines && f.column >= 1,
            "a finding outside the input ({lines} lines): {f:?}"
        );
    }
    let _ = report.render_text("user-data");
}
