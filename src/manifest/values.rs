//! Value types shared by every kind: located values, ports, durations, secret
//! references. Each one checks itself while it is deserialized, so a bad value is
//! reported at its own line and column.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::diagnostic::Pos;

thread_local! {
    /// Lines of the file before the document being parsed: documents are parsed
    /// alone, and their positions are the file's.
    static LINE_OFFSET: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `parse` with positions shifted down by `lines`.
pub(crate) fn with_line_offset<T>(lines: u32, parse: impl FnOnce() -> T) -> T {
    let previous = LINE_OFFSET.replace(lines);
    let result = parse();
    LINE_OFFSET.set(previous);
    result
}

impl Pos {
    pub(crate) fn from_location(location: serde_saphyr::Location) -> Self {
        let offset = if location.line() == 0 { 0 } else { LINE_OFFSET.get() };
        Pos {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX).saturating_add(offset),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
            len: u32::try_from(location.span().len()).unwrap_or(1),
        }
    }
}

/// A value together with the place it was written. Equality, ordering and hashing
/// look at the value only: moving a line in a file does not change an object.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub at: Pos,
}

impl<T> Located<T> {
    pub fn new(value: T, at: Pos) -> Self {
        Located { value, at }
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Located<T> {}

impl<T: PartialOrd> PartialOrd for Located<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<T: Ord> Ord for Located<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T: Hash> Hash for Located<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located::new(spanned.value, Pos::from_location(spanned.referenced)))
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A TCP port, 1-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl<'de> Visitor<'de> for PortVisitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number 1-65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(port) if port > 0 => Ok(Port(port)),
                    _ => Err(E::custom(format!("port {v} is out of range 1-65535"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("port {v} is out of range 1-65535"))),
                }
            }
            // Serde's default "invalid type" errors are placed at the key; these
            // are raised as custom errors so that they point at the value, as the
            // range errors above do.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Err(wrong_type(de::Unexpected::Str(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Port, E> {
                Err(wrong_type(de::Unexpected::Float(v), &self))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Port, E> {
                Err(wrong_type(de::Unexpected::Bool(v), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Port, E> {
                Err(wrong_type(de::Unexpected::Unit, &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Port, A::Error> {
                Err(wrong_type(de::Unexpected::Seq, &self))
            }
        }
        fn wrong_type<E: de::Error>(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> E {
            E::custom(format_args!("invalid type: {unexpected}, expected {expected}"))
        }
        deserializer.deserialize_any(PortVisitor)
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A TCP port.",
            "type": "integer",
            "minimum": 1,
            "maximum": 65535
        })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A positive duration written as numbers with units, e.g. `500ms`, `10s`, `5m`,
/// `1h30m`, `2d`. Kept with its text so it prints as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DurationSpec {
    pub duration: std::time::Duration,
    text: String,
}

/// The units a duration may use, longest suffix first so `ms` wins over `m`.
const DURATION_UNITS: [(&str, u64); 5] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

/// Numbers with units, at least one of them not zero (`0s` is not a duration).
pub(crate) const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))*[0-9]*[1-9][0-9]*(ms|s|m|h|d)([0-9]+(ms|s|m|h|d))*$";

impl DurationSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let help = "use whole numbers with units ms, s, m, h or d, e.g. \"10s\", \"5m\" or \"1h30m\"";
        let mut rest = text;
        let mut millis: u64 = 0;
        if rest.is_empty() {
            return Err(format!("empty duration: {help}"));
        }
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(format!("invalid duration \"{text}\": {help}"));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| format!("duration \"{text}\" is too long"))?;
            rest = &rest[digits..];
            let Some((unit, scale)) = DURATION_UNITS.iter().find(|(unit, _)| rest.starts_with(unit)) else {
                let what = if rest.is_empty() { "has no unit" } else { "has an unknown unit" };
                return Err(format!("duration \"{text}\" {what}: {help}"));
            };
            rest = &rest[unit.len()..];
            millis = number
                .checked_mul(*scale)
                .and_then(|part| millis.checked_add(part))
                .ok_or_else(|| format!("duration \"{text}\" is too long"))?;
        }
        if millis == 0 {
            return Err(format!("duration \"{text}\" must be longer than zero"));
        }
        Ok(DurationSpec { duration: std::time::Duration::from_millis(millis), text: text.to_owned() })
    }

    /// A duration known to be valid, for defaults.
    pub(crate) fn fixed(text: &'static str) -> Self {
        DurationSpec::parse(text).expect("default durations are valid")
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DurationSpec::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A positive duration: whole numbers with units ms, s, m, h or d, e.g. \"10s\", \"5m\", \"1h30m\".",
            "type": "string",
            "pattern": DURATION_PATTERN
        })
    }
}

/// A MAC address: six hex pairs, all joined by `:` or all by `-`.
pub(crate) const MAC_PATTERN: &str = "^([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5})$";

/// A network card's hardware address, e.g. `aa:bb:cc:dd:ee:ff`: what a
/// Wake-on-LAN magic packet repeats. Kept with its text so it prints as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MacAddress {
    pub octets: [u8; 6],
    text: String,
}

impl MacAddress {
    pub fn parse(text: &str) -> Result<Self, String> {
        let problem =
            || format!("MAC address \"{text}\" must be six hex pairs joined by ':' or '-', e.g. \"aa:bb:cc:dd:ee:ff\"");
        let separator = if text.contains(':') { ':' } else { '-' };
        let pairs: Vec<&str> = text.split(separator).collect();
        if pairs.len() != 6 {
            return Err(problem());
        }
        let mut octets = [0u8; 6];
        for (octet, pair) in octets.iter_mut().zip(&pairs) {
            if pair.len() != 2 || !pair.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(problem());
            }
            *octet = u8::from_str_radix(pair, 16).map_err(|_| problem())?;
        }
        Ok(MacAddress { octets, text: text.to_owned() })
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MacAddress::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl JsonSchema for MacAddress {
    fn schema_name() -> Cow<'static, str> {
        "MacAddress".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A MAC address: six hex pairs joined by ':' or '-', e.g. \"aa:bb:cc:dd:ee:ff\".",
            "type": "string",
            "pattern": MAC_PATTERN
        })
    }
}

/// Where a secret comes from. Manifests live in Git, so a secret itself is never
/// written in one: only a reference to an environment variable or a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SecretRef {
    #[serde(rename = "env")]
    Env(String),
    #[serde(rename = "file")]
    File(String),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            env: Option<String>,
            file: Option<String>,
        }

        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference {env: NAME} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom("a secret must not be written in a manifest: use {env: NAME} or {file: PATH}"))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretRef, A::Error> {
                let fields = Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (fields.env, fields.file) {
                    (Some(name), None) if !name.is_empty() => Ok(SecretRef::Env(name)),
                    (None, Some(path)) if !path.is_empty() => Ok(SecretRef::File(path)),
                    (Some(_), Some(_)) => {
                        Err(de::Error::custom("a secret reference takes either env or file, not both"))
                    }
                    _ => Err(de::Error::custom("a secret reference needs a non-empty env or file")),
                }
            }
        }
        deserializer.deserialize_any(SecretVisitor)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A reference to a secret kept outside the manifests.",
            "oneOf": [
                {
                    "type": "object",
                    "properties": { "env": { "description": "An environment variable of the controller.", "type": "string", "minLength": 1 } },
                    "required": ["env"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "file": { "description": "A file whose content is the secret.", "type": "string", "minLength": 1 } },
                    "required": ["file"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// A URL path: it starts with `/`.
pub(crate) const URL_PATH_PATTERN: &str = "^/";

/// Why `text` is not a URL path, if it is not. Each `*_problem` here is the
/// one rule behind its pattern: the checks and the schema walker both say it.
pub(crate) fn url_path_problem(text: &str) -> Option<&'static str> {
    (!text.starts_with('/')).then_some("must start with \"/\"")
}

/// An environment variable's name.
pub(crate) const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

pub(crate) fn env_name_problem(text: &str) -> Option<&'static str> {
    let valid = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!valid).then_some("is not a valid variable name (letters, digits and '_', not starting with a digit)")
}

/// The URL of an HTTP API.
pub(crate) const HTTP_URL_PATTERN: &str = "^https?://";

pub(crate) fn http_url_problem(text: &str) -> Option<&'static str> {
    let valid = text.starts_with("http://") || text.starts_with("https://");
    (!valid).then_some("must start with http:// or https://")
}

/// A Tailscale tag.
pub(crate) const TAG_PATTERN: &str = "^tag:.";

pub(crate) fn tag_problem(text: &str) -> Option<&'static str> {
    let valid = text.starts_with("tag:") && text.len() > 4;
    (!valid).then_some("must look like \"tag:name\"")
}

/// The name rule of every object: 1-63 lowercase letters, digits, `-` or `_`,
/// starting and ending with a letter or digit.
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$";

/// Why `name` breaks the name rule, if it does.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 63 {
        Some("is longer than 63 characters")
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        Some("may only hold lowercase letters, digits, '-' and '_'")
    } else if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_units_and_sums() {
        let cases = [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1m1ms", 60_001),
        ];
        for (text, millis) in cases {
            let parsed = DurationSpec::parse(text).unwrap();
            assert_eq!(parsed.duration.as_millis(), millis, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn durations_reject_what_the_pattern_rejects() {
        for text in ["", "10", "s", "10 s", "1.5h", "-1s", "10sec", "0s", "99999999999999999999s"] {
            assert!(DurationSpec::parse(text).is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn name_rule_matches_the_design() {
        for good in ["a", "llm_inference", "agent-home-mini", "x1", &"a".repeat(63)] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in ["", "-a", "a-", "_a", "A", "a.b", "a b", &"a".repeat(64)] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
