//! A small owned YAML tree with 1-based positions on every node, built from
//! saphyr's marked nodes.
//!
//! Why not use saphyr's tree directly: it resolves scalars (`0644` becomes
//! the integer 644, so the octal digits the user wrote are lost), it rejects
//! duplicate keys as a hard error (we want a warning that names both lines),
//! and its nodes borrow the input. This tree keeps the raw text of every
//! scalar, every key occurrence in order, and owns its data.

use std::borrow::Cow;
use std::collections::BTreeMap;

use saphyr::{MarkedYaml, Scalar, ScalarStyle, ScanError, Tag, YamlData, YamlLoader};

/// What a scalar resolved to under the YAML core schema; the raw text is
/// kept alongside, so this only serves type checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    Null,
    Bool(bool),
    Integer,
    Float,
    String,
    /// A `!!binary` scalar: `raw` is its base64 text (whitespace removed),
    /// for the field that takes bytes (`write_files[].content`) to decode.
    Binary,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar {
        raw: String,
        kind: ScalarKind,
    },
    Seq(Vec<Node>),
    /// Entries in document order, duplicates included.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    pub value: Value,
}

impl Node {
    /// A short name of the node's type for "want X, got Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { kind, .. } => match kind {
                ScalarKind::Null => "null",
                ScalarKind::Bool(_) => "bool",
                ScalarKind::Integer => "integer",
                ScalarKind::Float => "float",
                ScalarKind::String => "string",
                ScalarKind::Binary => "binary data",
            },
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                kind: ScalarKind::Null,
                ..
            }
        )
    }
}

/// A YAML syntax error at a 1-based position, with a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The loaded document (None for a document with no content at all) and
/// whether further documents followed it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub root: Option<Node>,
    pub extra_documents: bool,
}

/// Bound on how many duplicate keys we work around before giving up; each
/// one costs a re-parse.
const MAX_DUPLICATE_RETRIES: usize = 64;

/// Parse `src` into a [`Node`] tree.
pub(crate) fn load(src: &str) -> Result<Loaded, SyntaxError> {
    // Duplicate keys: saphyr stops at the second occurrence. We rename that
    // occurrence in a working copy to a unique key of the same length (so no
    // position moves), remember its original text, and parse again. The
    // parse layer then sees both keys and reports the duplicate as a warning.
    // The working copy is only made once a duplicate shows up: a char
    // vector is four times the size of the text.
    let mut work: Option<Vec<char>> = None;
    let mut renamed: BTreeMap<usize, String> = BTreeMap::new();
    for attempt in 0..=MAX_DUPLICATE_RETRIES {
        let text: Cow<str> = match &work {
            None => Cow::Borrowed(src),
            Some(chars) => Cow::Owned(chars.iter().collect()),
        };
        match load_documents(&text) {
            Ok(docs) => {
                let lines = LineIndex::new(src);
                let conv = Converter {
                    lines: &lines,
                    renamed: &renamed,
                };
                let last_line = yaml_line_count(src);
                let root = docs.first().map(|d| {
                    let mut root = conv.node(d);
                    inherit_positions(&mut root, 1, 1);
                    clamp_positions(&mut root, last_line);
                    root
                });
                return Ok(Loaded {
                    root,
                    extra_documents: docs.len() > 1,
                });
            }
            Err(e)
                if e.info() == "duplicated key in mapping" && attempt < MAX_DUPLICATE_RETRIES =>
            {
                let index = e.marker().index();
                let chars = work.get_or_insert_with(|| src.chars().collect());
                match rename_key(chars, index, attempt) {
                    Some(original) => {
                        renamed.insert(index, original);
                    }
                    None => return Err(syntax_error(&e)),
                }
            }
            Err(e) => {
                return Err(point_into_the_file(
                    src,
                    point_at_tab(src, syntax_error(&e)),
                ))
            }
        };
    }
    Err(SyntaxError {
        line: 1,
        column: 1,
        message: "too many duplicate keys".to_string(),
    })
}

/// Turn the parser's message into something a user can act on.
fn syntax_error(e: &ScanError) -> SyntaxError {
    let info = e.info();
    let message = if info.contains("tab") {
        "tabs are not allowed for indentation in YAML; indent with spaces".to_string()
    } else if info == "simple key expect ':'" {
        "could not find expected ':' (a line in a mapping must look like \"key: value\")"
            .to_string()
    } else if info.starts_with("mapping values are not allowed") {
        format!("{info} (is a \": \" missing quotes around it?)")
    } else {
        format!("YAML syntax error: {info}")
    };
    SyntaxError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message,
    }
}

/// The parser reports a tab error after the tab, sometimes at the end of
/// the line before it; point at the tab in the indentation itself.
fn point_at_tab(src: &str, mut e: SyntaxError) -> SyntaxError {
    if !e.message.starts_with("tabs") {
        return e;
    }
    let first = e.line.saturating_sub(1);
    for (n, line) in src.lines().enumerate().skip(first).take(2) {
        let indent = line.len() - line.trim_start().len();
        if let Some(i) = line[..indent].chars().position(|c| c == '\t') {
            e.line = n + 1;
            e.column = i + 1;
            return e;
        }
    }
    e
}

/// Lines as YAML counts them: CR LF, LF and a lone CR each end one.
fn yaml_line_count(src: &str) -> usize {
    src.replace("\r\n", "\n").split(['\n', '\r']).count()
}

/// saphyr places an empty node at the end of the input (an explicit key
/// `?` with nothing after it, on the last line): such a node takes the
/// start of the last line, so its finding names a line of the file.
fn clamp_positions(node: &mut Node, last_line: usize) {
    if node.line > last_line {
        node.line = last_line;
        node.column = 1;
    }
    match &mut node.value {
        Value::Seq(items) => {
            for item in items {
                clamp_positions(item, last_line);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                clamp_positions(key, last_line);
                clamp_positions(value, last_line);
            }
        }
        Value::Scalar { .. } => {}
    }
}

/// The parser finds an unclosed `[`, `{` or quote only at the end of the
/// file, and reports it there: on a line after the last one. Point at the
/// opening bracket that is never closed instead, or else at the end of the
/// last line that has text, so every finding names a line of the file.
fn point_into_the_file(src: &str, mut e: SyntaxError) -> SyntaxError {
    // Past the last line with text: nothing but blank lines from there on.
    let past_end = src
        .lines()
        .skip(e.line.saturating_sub(1))
        .all(|l| l.trim().is_empty());
    if !past_end {
        return e;
    }
    if let Some((line, column, open)) = unclosed_bracket(src) {
        e.line = line;
        e.column = column;
        e.message = format!("{} (the {open:?} here is never closed)", e.message);
        return e;
    }
    if let Some((n, last)) = src
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .last()
    {
        e.line = n + 1;
        e.column = last.chars().count() + 1;
    }
    e
}

/// The last `[` or `{` of a flow collection left open in `src`, with its
/// line and column; quoted text and comments are skipped.
fn unclosed_bracket(src: &str) -> Option<(usize, usize, char)> {
    let mut open: Vec<(usize, usize, char)> = Vec::new();
    for (n, line) in src.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if prev == ' ' || col == 0 => break,
                (None, '[' | '{') => open.push((n + 1, col + 1, c)),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
            prev = c;
        }
    }
    open.pop()
}

/// Replace the key starting at char `index` with a same-length placeholder;
/// returns the key's original text (unquoted), or None if it cannot be done.
fn rename_key(work: &mut [char], index: usize, attempt: usize) -> Option<String> {
    let (start, end, original) = key_extent(work, index)?;
    // A private-use character (valid in YAML, never in a real key) that
    // differs per attempt makes each placeholder unique at any length.
    let mark = char::from_u32(0xE000 + u32::try_from(attempt).ok()?)?;
    let slot = work.get_mut(start..end)?;
    let (first, rest) = slot.split_first_mut()?;
    *first = mark;
    rest.fill('q');
    Some(original)
}

/// The char range of the key token at `index` and its unquoted text.
fn key_extent(work: &[char], index: usize) -> Option<(usize, usize, String)> {
    let first = *work.get(index)?;
    if first == '"' || first == '\'' {
        let close = work[index + 1..].iter().position(|&c| c == first)? + index + 1;
        let inner: String = work[index + 1..close].iter().collect();
        return Some((index, close + 1, inner));
    }
    let mut end = index;
    while end < work.len() && work[end] != '\n' {
        let next = work.get(end + 1).copied();
        if work[end] == ':' && matches!(next, None | Some(' ') | Some('\n') | Some('\r')) {
            break;
        }
        end += 1;
    }
    let text: String = work[index..end].iter().collect();
    let trimmed = text.trim_end();
    Some((index, index + trimmed.chars().count(), trimmed.to_string()))
}

/// Byte offsets of line starts, to slice raw scalar text by line/column.
struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    /// The text from (line, col) for `len` chars on that line (1-based
    /// line, 0-based col as saphyr gives them).
    fn slice(&self, line: usize, col: usize, len: usize) -> Option<String> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        let rest = self.src.get(start..)?;
        Some(rest.chars().skip(col).take(len).collect())
    }
}

struct Converter<'a> {
    lines: &'a LineIndex<'a>,
    renamed: &'a BTreeMap<usize, String>,
}

impl Converter<'_> {
    fn node(&self, n: &MarkedYaml) -> Node {
        let start = n.span.start;
        let value = match &n.data {
            YamlData::Sequence(items) => Value::Seq(items.iter().map(|i| self.node(i)).collect()),
            YamlData::Mapping(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (self.key(k), self.node(v)))
                    .collect(),
            ),
            YamlData::Tagged(_, inner) => return self.node(inner),
            YamlData::Value(s) => self.scalar(n, s),
            YamlData::Representation(raw, style, tag) => {
                self.representation(n, raw, *style, tag.as_ref())
            }
            YamlData::Alias(_) | YamlData::BadValue => Value::Scalar {
                raw: String::new(),
                kind: ScalarKind::Null,
            },
        };
        Node {
            line: start.line(),
            column: start.col() + 1,
            value,
        }
    }

    fn key(&self, k: &MarkedYaml) -> Node {
        let mut node = self.node(k);
        if let Some(original) = self.renamed.get(&k.span.start.index()) {
            node.value = Value::Scalar {
                raw: original.clone(),
                kind: ScalarKind::String,
            };
        }
        node
    }

    /// A scalar as written, with its tag: `!!binary` is kept for the
    /// fields that decode it (saphyr's early parsing turns it into a bad
    /// value, and a `write_files` entry with it was written empty); any
    /// other is resolved as YAML's core schema resolves it.
    fn representation(
        &self,
        n: &MarkedYaml,
        raw: &str,
        style: ScalarStyle,
        tag: Option<&Cow<Tag>>,
    ) -> Value {
        if tag.is_some_and(|t| is_binary_tag(t)) {
            return Value::Scalar {
                raw: raw.chars().filter(|c| !c.is_whitespace()).collect(),
                kind: ScalarKind::Binary,
            };
        }
        match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(raw), style, tag) {
            Some(scalar) => self.scalar(n, &scalar),
            // A value its tag refuses (`!!int abc`): no value, as before.
            None => Value::Scalar {
                raw: String::new(),
                kind: ScalarKind::Null,
            },
        }
    }

    /// Strings are kept as parsed (quoted or not, that is what the user
    /// meant); anything resolved to another type was a plain scalar, whose
    /// source text is the raw value.
    fn scalar(&self, n: &MarkedYaml, s: &Scalar) -> Value {
        let kind = match s {
            Scalar::String(text) => {
                return Value::Scalar {
                    raw: text.to_string(),
                    kind: ScalarKind::String,
                }
            }
            Scalar::Null => ScalarKind::Null,
            Scalar::Boolean(b) => ScalarKind::Bool(*b),
            Scalar::Integer(_) => ScalarKind::Integer,
            Scalar::FloatingPoint(_) => ScalarKind::Float,
        };
        let (start, end) = (n.span.start, n.span.end);
        let len = end.index().saturating_sub(start.index());
        let raw = if start.line() == end.line() {
            self.lines.slice(start.line(), start.col(), len)
        } else {
            None
        };
        let raw = raw.unwrap_or_else(|| fallback_text(s));
        Value::Scalar { raw, kind }
    }
}

/// saphyr gives some nodes (e.g. an empty value after a bare tag `!`) no
/// position (line 0); such a node takes its parent's (for a map value,
/// its key's), so every finding points somewhere real.
fn inherit_positions(node: &mut Node, line: usize, column: usize) {
    if node.line == 0 {
        node.line = line;
        node.column = column;
    }
    let (line, column) = (node.line, node.column);
    match &mut node.value {
        Value::Seq(items) => {
            for item in items {
                inherit_positions(item, line, column);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                inherit_positions(key, line, column);
                inherit_positions(value, key.line, key.column);
            }
        }
        Value::Scalar { .. } => {}
    }
}

fn fallback_text(s: &Scalar) -> String {
    match s {
        Scalar::Null => String::new(),
        Scalar::Boolean(b) => b.to_string(),
        Scalar::Integer(i) => i.to_string(),
        Scalar::FloatingPoint(f) => f.to_string(),
        Scalar::String(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        load(src).unwrap().root.unwrap()
    }

    fn entries(n: &Node) -> &[(Node, Node)] {
        match &n.value {
            Value::Map(m) => m,
            _ => panic!("not a map"),
        }
    }

    fn raw(n: &Node) -> &str {
        match &n.value {
            Value::Scalar { raw, .. } => raw,
            _ => panic!("not a scalar"),
        }
    }

    #[test]
    fn keeps_raw_scalar_text_and_positions() {
        let r = root("a: 0644\nb: off\nc: \"q\"\nd: 1.50\ne:\nf: ~\n");
        let m = entries(&r);
        assert_eq!(raw(&m[0].1), "0644");
        assert_eq!(m[0].1.type_name(), "integer");
        assert_eq!((m[0].1.line, m[0].1.column), (1, 4));
        assert_eq!(raw(&m[1].1), "off");
        assert_eq!(raw(&m[2].1), "q");
        assert_eq!((m[2].1.line, m[2].1.column), (3, 4));
        assert_eq!(raw(&m[3].1), "1.50");
        assert!(m[4].1.is_null());
        assert_eq!(raw(&m[5].1), "~");
        assert_eq!((m[5].0.line, m[5].0.column), (6, 1));
    }

    #[test]
    fn duplicate_keys_survive_with_original_text() {
        let r = root("hostname: a\nx: 1\nhostname: b\n\"hostname\": c\n");
        let keys: Vec<_> = entries(&r)
            .iter()
            .map(|(k, _)| raw(k).to_string())
            .collect();
        assert_eq!(keys, ["hostname", "x", "hostname", "hostname"]);
        let m = entries(&r);
        assert_eq!(raw(&m[2].1), "b");
        assert_eq!((m[3].0.line, m[3].0.column), (4, 1));
    }

    #[test]
    fn tab_indentation_is_explained() {
        let e = load("foo:\n\t- b\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.message.contains("tabs are not allowed"), "{}", e.message);
    }

    #[test]
    fn empty_document_has_no_root() {
        assert!(load("# only a comment\n").unwrap().root.is_none());
    }
}

/// YAML's `!!binary` (`tag:yaml.org,2002:binary`), base64 data.
fn is_binary_tag(tag: &Tag) -> bool {
    tag.suffix == "binary" && (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:")
}

/// The documents of `text`, each scalar kept with its tag (saphyr's
/// default early parsing drops the scalars it cannot type, `!!binary`
/// among them).
fn load_documents(text: &str) -> Result<Vec<MarkedYaml<'_>>, ScanError> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut loader: YamlLoader<MarkedYaml> = YamlLoader::default();
    loader.early_parse(false);
    parser.load(&mut loader, true)?;
    if let Some(e) = loader.error() {
        return Err(e.clone());
    }
    Ok(loader.into_documents())
}

#[cfg(test)]
mod syntax_positions {
    use super::*;

    fn error_at(src: &str) -> (usize, usize, String) {
        let e = load(src).unwrap_err();
        (e.line, e.column, e.message)
    }

    /// An unclosed bracket is found at the end of the file; the finding
    /// names the bracket's line, not the line after the last.
    #[test]
    fn unclosed_brackets_point_at_the_bracket() {
        let (line, column, msg) = error_at("#cloud-config\nfoo: [1, 2\n");
        assert_eq!((line, column), (2, 6), "{msg}");
        assert!(msg.contains("the '[' here is never closed"), "{msg}");
        let (line, column, _) = error_at("a: {b: [1]\n\n\n");
        assert_eq!((line, column), (1, 4));
        // Brackets in quotes and comments do not count.
        let (line, _, _) = error_at("a: '[' # ]\nb: [x\n");
        assert_eq!(line, 2);
    }

    /// Found by the `user_data` fuzz target: an explicit key `?` on the
    /// last line, without a newline, was placed on the line after it.
    #[test]
    fn an_empty_key_at_the_end_names_the_last_line() {
        let loaded = load("a: 1\n? #c").unwrap();
        let Some(Node {
            value: Value::Map(entries),
            ..
        }) = loaded.root
        else {
            panic!("a mapping");
        };
        let (key, _) = entries.last().unwrap();
        assert_eq!((key.line, key.column), (2, 1));
    }

    #[test]
    fn errors_inside_the_file_keep_their_place() {
        let (line, column, _) = error_at("a:\n  - b\n c: d\ne: f\n");
        assert!(line <= 3, "{line}:{column}");
        assert!(line >= 1);
    }
}
