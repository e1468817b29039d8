//! An in-memory description of a file tree, the common input of the
//! archive writers (squashfs root image, initramfs cpio).
//!
//! Paths are relative, `/`-separated, without a leading slash. Every entry is
//! owned by root; times come from the image's `SOURCE_DATE_EPOCH`, not from
//! here, so two trees with the same entries produce the same bytes.

use std::collections::BTreeMap;

/// What one path in the tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

/// A file tree, sorted by path so every consumer walks it in one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (mode like `0o755`) and any missing parents.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(path, Node::Dir { mode });
        self
    }

    /// Adds a regular file and any missing parent directories (0755).
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Node::File {
                mode,
                data: data.into(),
            },
        );
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        );
        self
    }

    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        let path = normalize(path);
        self.parents(&path);
        self.entries
            .insert(path, Node::CharDevice { mode, major, minor });
        self
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.entries.get(&normalize(path))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    /// Entries in path order; a directory always comes before its children.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(p, n)| (p.as_str(), n))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            self.entries
                .entry(parent.to_string())
                .or_insert(Node::Dir { mode: 0o755 });
            end += i + 1;
        }
    }
}

fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut t = Tree::new();
        t.file("/usr/bin/x", 0o755, b"x".to_vec());
        let paths: Vec<_> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["usr", "usr/bin", "usr/bin/x"]);
    }

    #[test]
    fn explicit_dir_mode_wins_over_implicit_parent() {
        let mut t = Tree::new();
        t.file("tmp/a", 0o644, Vec::new());
        t.dir("tmp", 0o1777);
        assert_eq!(t.get("tmp"), Some(&Node::Dir { mode: 0o1777 }));
    }
}
