//! Parsing metadata documents: NoCloud `meta-data` (YAML) and ConfigDrive
//! `meta_data.json`. Errors are plain messages; callers add the file or URL.

use saphyr::{LoadableYamlNode, Scalar, Yaml};

use super::Metadata;

/// NoCloud `meta-data`: a YAML mapping with `instance-id`,
/// `local-hostname`, `public-keys` (a string, a list, or a mapping of
/// name to key or list of keys, as cloud-init accepts) and optionally
/// `public-ipv4`, `local-ipv4`, `public-ipv6`, `local-ipv6`. Other keys are
/// ignored. An empty document is an empty metadata. JSON is YAML, so a
/// JSON `meta-data` works too.
///
/// Scalars are taken as YAML resolves them: `instance-id: 0123` is the
/// integer 123 (write `'0123'` to keep the zero).
pub fn parse_nocloud(bytes: &[u8]) -> Result<Metadata, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let docs = Yaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        format!(
            "not valid YAML: line {} column {}: {}",
            m.line(),
            m.col() + 1,
            e.info()
        )
    })?;
    let mut meta = Metadata::default();
    let Some(doc) = docs.first() else {
        return Ok(meta);
    };
    let doc = untag(doc);
    if is_null(doc) {
        return Ok(meta);
    }
    let Yaml::Mapping(map) = doc else {
        return Err(format!(
            "want a mapping (instance-id: …), got {}",
            type_name(doc)
        ));
    };
    for (key, value) in map {
        let Some(key) = scalar_text(untag(key)) else {
            continue;
        };
        let slot = match key.as_str() {
            "instance-id" => &mut meta.instance_id,
            "local-hostname" => &mut meta.local_hostname,
            "public-ipv4" => &mut meta.public_ipv4,
            "local-ipv4" => &mut meta.private_ipv4,
            "public-ipv6" => &mut meta.public_ipv6,
            "local-ipv6" => &mut meta.private_ipv6,
            "public-keys" => {
                meta.public_keys = public_keys(untag(value))?;
                continue;
            }
            _ => continue,
        };
        let value = untag(value);
        if is_null(value) {
            continue;
        }
        match scalar_text(value) {
            Some(text) => *slot = Some(text),
            None => return Err(format!("{key}: want a string, got {}", type_name(value))),
        }
    }
    Ok(meta)
}

/// cloud-init's rules: a string is one key per line; a list is keys; a
/// mapping's values are keys or lists of keys (a nested mapping with
/// `openssh-key`, as EC2 lays it out, is accepted too). Empty entries are
/// dropped.
fn public_keys(value: &Yaml) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut push = |text: String| {
        for line in text.lines() {
            let line = line.trim();
            if !line.is_empty() {
                keys.push(line.to_string());
            }
        }
    };
    match value {
        v if is_null(v) => {}
        Yaml::Sequence(items) => {
            for item in items {
                push(key_text(untag(item), "public-keys")?);
            }
        }
        Yaml::Mapping(map) => {
            for (name, item) in map {
                let name = scalar_text(untag(name)).unwrap_or_default();
                let context = format!("public-keys: {name}");
                match untag(item) {
                    Yaml::Sequence(list) => {
                        for k in list {
                            push(key_text(untag(k), &context)?);
                        }
                    }
                    Yaml::Mapping(inner) => {
                        for (k, v) in inner {
                            if scalar_text(untag(k)).as_deref() == Some("openssh-key") {
                                push(key_text(untag(v), &context)?);
                            }
                        }
                    }
                    other => push(key_text(other, &context)?),
                }
            }
        }
        other => push(key_text(other, "public-keys")?),
    }
    Ok(keys)
}

fn key_text(value: &Yaml, context: &str) -> Result<String, String> {
    if is_null(value) {
        return Ok(String::new());
    }
    scalar_text(value).ok_or_else(|| {
        format!(
            "{context}: want an SSH public key (a string), got {}",
            type_name(value)
        )
    })
}

fn untag<'a, 'b>(y: &'a Yaml<'b>) -> &'a Yaml<'b> {
    match y {
        Yaml::Tagged(_, inner) => untag(inner),
        other => other,
    }
}

fn is_null(y: &Yaml) -> bool {
    matches!(y, Yaml::Value(Scalar::Null))
}

/// The text of a non-null scalar.
fn scalar_text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::Value(Scalar::String(s)) => Some(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Some(i.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        Yaml::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        Yaml::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

fn type_name(y: &Yaml) -> &'static str {
    match y {
        Yaml::Value(Scalar::Null) => "null",
        Yaml::Value(_) | Yaml::Representation(..) => "a scalar",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_, inner) => type_name(inner),
        Yaml::Alias(_) => "an alias",
        Yaml::BadValue => "an invalid value",
    }
}

/// ConfigDrive `meta_data.json`: `uuid` is the instance ID, `hostname` the
/// host name, `public_keys` a map of key name to key.
pub fn parse_configdrive(bytes: &[u8]) -> Result<Metadata, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let serde_json::Value::Object(obj) = value else {
        return Err("want a JSON object".to_string());
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{key}: want a string")),
        }
    };
    let mut meta = Metadata {
        instance_id: string("uuid")?,
        local_hostname: string("hostname")?,
        ..Metadata::default()
    };
    match obj.get("public_keys") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(keys)) => {
            for (name, key) in keys {
                match key {
                    serde_json::Value::String(k) => {
                        let k = k.trim();
                        if !k.is_empty() {
                            meta.public_keys.push(k.to_string());
                        }
                    }
                    _ => return Err(format!("public_keys: {name}: want a string")),
                }
            }
        }
        Some(_) => return Err("public_keys: want an object (name to key)".to_string()),
    }
    Ok(meta)
}
