//! The report of validating one user-data file: its form, the findings in
//! the order of their positions, and the configuration when it parsed.

use crate::findings::{Finding, Level};
use crate::schema::CloudConfig;
use crate::userdata::UserDataKind;

/// The outcome of validating one user-data file.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: UserDataKind,
    pub findings: Vec<Finding>,
    /// The parsed configuration, when the user-data is a cloud-config whose
    /// YAML could be read (even if it has findings).
    pub config: Option<CloudConfig>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    pub fn has_warnings(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Warning)
    }

    /// Findings ordered by position; ties keep the order they were found in
    /// (a stable sort), so related findings stay together.
    pub fn sorted(&self) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = self.findings.iter().collect();
        v.sort_by_key(|f| (f.line, f.column));
        v
    }

    /// One line per finding, `FILE:LINE:COL: level: message`, the format
    /// compilers use so editors can jump to it.
    pub fn render_text(&self, file: &str) -> String {
        self.sorted()
            .iter()
            .map(|f| {
                format!(
                    "{file}:{}:{}: {}: {}\n",
                    f.line, f.column, f.level, f.message
                )
            })
            .collect()
    }

    pub fn to_json(&self, file: &str) -> serde_json::Value {
        serde_json::json!({
            "file": file,
            "kind": self.kind.to_string(),
            "findings": self.sorted(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            kind: UserDataKind::CloudConfig,
            findings: vec![
                Finding::warning(5, 3, "b"),
                Finding::error(2, 1, "a"),
                Finding::info(5, 1, "c"),
            ],
            config: None,
        }
    }

    #[test]
    fn text_is_sorted_by_position() {
        assert_eq!(
            report().render_text("u.yaml"),
            "u.yaml:2:1: error: a\nu.yaml:5:1: info: c\nu.yaml:5:3: warning: b\n"
        );
    }

    #[test]
    fn json_shape() {
        let j = report().to_json("u.yaml");
        assert_eq!(j["file"], "u.yaml");
        assert_eq!(j["kind"], "cloud-config");
        assert_eq!(j["findings"][0]["level"], "error");
        assert_eq!(j["findings"][0]["line"], 2);
        assert_eq!(j["findings"][2]["message"], "b");
    }

    #[test]
    fn flags() {
        let r = report();
        assert!(r.has_errors() && r.has_warnings());
        let empty = Report {
            kind: UserDataKind::Empty,
            findings: vec![],
            config: None,
        };
        assert!(!empty.has_errors() && !empty.has_warnings());
    }
}
