//! Every structural problem of a document that did not parse as its kind: the
//! document's YAML tree, with the place of every key and value, walked against
//! its kind's JSON Schema as a JSON Schema validator walks it, so that one run
//! reports an unknown field, a bad enum value and a bad duration together.
//! The parser's own error stops at the first problem; this finds the rest.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::object::Kind;
use super::schema::kind_schema;
use super::values::{
    DURATION_PATTERN, DurationSpec, ENV_NAME_PATTERN, HTTP_URL_PATTERN, Located, MAC_PATTERN, MacAddress, NAME_PATTERN,
    TAG_PATTERN, URL_PATH_PATTERN, env_name_problem, http_url_problem, name_problem, tag_problem, url_path_problem,
};
use crate::diagnostic::{Pos, did_you_mean};

/// One problem: where, what, and maybe a suggestion.
#[derive(Debug)]
pub(super) struct Problem {
    pub at: Pos,
    pub message: String,
    pub help: Option<String>,
}

/// A YAML value with the place of each of its parts.
#[derive(Debug)]
pub(super) enum Tree {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
    List(Vec<Located<Tree>>),
    Mapping(Vec<(Located<Tree>, Located<Tree>)>),
}

/// Every problem of `document` against the schema of `kind`. `start` is where
/// the document begins, for fields the whole document lacks.
pub(super) fn problems(kind: Kind, document: &Located<Tree>, start: Pos) -> Vec<Problem> {
    let root = &SCHEMAS[&kind];
    let mut walker = Walker { root, out: Vec::new() };
    walker.walk(root, document, &Place { path: String::new(), key_at: start });
    walker.out
}

/// Each kind's schema, generated once.
static SCHEMAS: LazyLock<HashMap<Kind, Value>> =
    LazyLock::new(|| Kind::ALL.into_iter().map(|kind| (kind, kind_schema(kind).to_value())).collect());

/// Where a value sits: its dotted path as messages name it (`healthCheck.tcp`,
/// `metadata.name`) and the place of the key that holds it.
struct Place {
    path: String,
    key_at: Pos,
}

impl Place {
    fn child(&self, key: &str, key_at: Pos) -> Place {
        let path = match self.path.as_str() {
            // Messages name a spec's fields as the user thinks of them.
            "" if key == "spec" => String::new(),
            "" => key.to_owned(),
            parent => format!("{parent}.{key}"),
        };
        Place { path, key_at }
    }

    /// The path, or `what` for the document's root and spec.
    fn or<'a>(&'a self, what: &'a str) -> &'a str {
        if self.path.is_empty() { what } else { &self.path }
    }
}

struct Walker<'s> {
    root: &'s Value,
    out: Vec<Problem>,
}

impl<'s> Walker<'s> {
    fn report(&mut self, at: Pos, message: String, help: Option<String>) {
        self.out.push(Problem { at, message, help });
    }

    /// The schema a `$ref` names (only this schema's own `#/$defs/…`).
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    fn walk(&mut self, schema: &'s Value, node: &Located<Tree>, place: &Place) {
        let Some(schema) = schema.as_object() else { return };
        if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
            self.walk(target, node, place);
        }
        if let Some(types) = schema.get("type")
            && !type_accepts(types, &node.value)
        {
            let plain = match &node.value {
                Tree::Bool(b) => Some(b.to_string()),
                Tree::Int(n) => Some(n.to_string()),
                Tree::Float(x) => Some(x.to_string()),
                _ => None,
            };
            match plain.filter(|_| types.as_str() == Some("string")) {
                // The parser's words for the same mistake.
                Some(plain) => self.report(
                    node.at,
                    format!("{plain} reads as a number, boolean or null, but this field takes text"),
                    Some(format!("quote it: \"{plain}\"")),
                ),
                None => {
                    let expected = type_names(types);
                    self.report(node.at, format!("invalid type: {}, expected {expected}", node.value), None);
                }
            }
            return;
        }
        for (keyword, combine) in [("oneOf", Combine::ExactlyOne), ("anyOf", Combine::AtLeastOne)] {
            if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
                let description = schema.get("description").and_then(Value::as_str);
                self.combination(combine, branches, description, node, place);
            }
        }
        if let Some(allowed) = schema
            .get("const")
            .map(std::slice::from_ref)
            .or_else(|| schema.get("enum").and_then(Value::as_array).map(Vec::as_slice))
        {
            self.one_of_values(allowed, node);
        }
        match &node.value {
            Tree::Text(text) => self.text(schema, text, node.at, place),
            Tree::Int(number) => self.number(schema, *number, node.at, place),
            Tree::List(items) => {
                self.count(schema, "minItems", items.len(), node.at, place, "item");
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &place.child(&index.to_string(), item.at));
                    }
                }
            }
            Tree::Mapping(entries) => self.mapping(schema, entries, node.at, place),
            Tree::Null | Tree::Bool(_) | Tree::Float(_) => {}
        }
    }

    fn text(&mut self, schema: &serde_json::Map<String, Value>, text: &str, at: Pos, place: &Place) {
        if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| (text.chars().count() as u64) < min) {
            self.report(at, format!("{} must not be empty", place.or("the value")), None);
        }
        let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else { return };
        if let Some(problem) = pattern_problem(pattern, place.or("the value"), text) {
            self.report(at, problem, None);
        }
    }

    fn number(&mut self, schema: &serde_json::Map<String, Value>, number: i128, at: Pos, place: &Place) {
        let bound = |name| schema.get(name).and_then(Value::as_i64).map(i128::from);
        let (min, max) = (bound("minimum"), bound("maximum"));
        if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
            let range =
                format!("{}-{}", min.map_or("".into(), |m| m.to_string()), max.map_or("".into(), |m| m.to_string()));
            self.report(at, format!("{} {number} is out of range {range}", place.or("value")), None);
        }
    }

    fn count(
        &mut self,
        schema: &serde_json::Map<String, Value>,
        keyword: &str,
        len: usize,
        at: Pos,
        place: &Place,
        what: &str,
    ) {
        if let Some(min) = schema.get(keyword).and_then(Value::as_u64)
            && (len as u64) < min
        {
            let plural = if min == 1 { "" } else { "s" };
            self.report(at, format!("{} needs at least {min} {what}{plural}", place.or("the value")), None);
        }
    }

    fn mapping(
        &mut self,
        schema: &'s serde_json::Map<String, Value>,
        entries: &[(Located<Tree>, Located<Tree>)],
        at: Pos,
        place: &Place,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        self.count(schema, "minProperties", entries.len(), at, place, "entry");
        for (key, value) in entries {
            let Tree::Text(name) = &key.value else {
                self.report(key.at, format!("invalid type: {} as a key, expected a string", key.value), None);
                continue;
            };
            if let Some(names) = schema.get("propertyNames") {
                self.walk(names, key, &Place { path: place.path.clone(), key_at: key.at });
            }
            let child = place.child(name, key.at);
            match (properties.and_then(|p| p.get(name)), extra) {
                (Some(property), _) => self.walk(property, value, &child),
                (None, Some(Value::Bool(false))) => {
                    // Sorted: the schema's order depends on serde_json's features.
                    let mut known: Vec<&str> =
                        properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                    known.sort_unstable();
                    self.report(
                        key.at,
                        format!("unknown field `{name}`, expected one of {}", known.join(", ")),
                        did_you_mean(name, known.iter().copied()),
                    );
                }
                (None, Some(extra @ Value::Object(_))) => self.walk(extra, value, &child),
                (None, _) => {}
            }
        }
        let present = |name: &str| entries.iter().any(|(key, _)| matches!(&key.value, Tree::Text(k) if k == name));
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !present(name) {
                self.report(place.key_at, format!("missing field `{name}`"), None);
            }
        }
    }

    /// A value that must equal one of `allowed`.
    fn one_of_values(&mut self, allowed: &[Value], node: &Located<Tree>) {
        if allowed.iter().any(|value| node.value.equals(value)) {
            return;
        }
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let message = match &node.value {
            Tree::Text(text) => format!("unknown variant `{text}`, expected one of {}", names.join(", ")),
            other => format!("invalid value: {other}, expected one of {}", names.join(", ")),
        };
        let help = match &node.value {
            Tree::Text(text) => did_you_mean(text, names.iter().copied()),
            _ => None,
        };
        self.report(node.at, message, help);
    }

    /// `oneOf` / `anyOf`. When no branch fits, the problems of the one branch
    /// of the value's type are the useful ones; with several, one message says
    /// what was expected.
    fn combination(
        &mut self,
        combine: Combine,
        branches: &'s [Value],
        description: Option<&str>,
        node: &Located<Tree>,
        place: &Place,
    ) {
        let outcomes: Vec<Vec<Problem>> = branches
            .iter()
            .map(|branch| {
                let mut inner = Walker { root: self.root, out: Vec::new() };
                inner.walk(branch, node, place);
                inner.out
            })
            .collect();
        let fitting = outcomes.iter().filter(|problems| problems.is_empty()).count();
        let fine = match combine {
            Combine::ExactlyOne => fitting == 1,
            Combine::AtLeastOne => fitting >= 1,
        };
        if fine {
            return;
        }
        if let Tree::Mapping(entries) = &node.value
            && let Some(names) = required_names(branches)
        {
            let has = |name: &str| entries.iter().any(|(key, _)| matches!(&key.value, Tree::Text(k) if k == name));
            let present: Vec<usize> = (0..names.len()).filter(|&index| has(names[index])).collect();
            let listed = names.join(" or ");
            match present.as_slice() {
                [] => self.report(place.key_at, format!("{} needs {listed}", place.or("the spec")), None),
                [only] => self.out.extend(outcomes.into_iter().nth(*only).unwrap_or_default()),
                _ => self.report(place.key_at, format!("{} takes {listed}, not both", place.or("the spec")), None),
            }
            return;
        }
        if branches.iter().all(|branch| branch.get("const").is_some()) {
            let allowed: Vec<Value> = branches.iter().filter_map(|branch| branch.get("const").cloned()).collect();
            self.one_of_values(&allowed, node);
            return;
        }
        let mut of_this_type =
            branches.iter().zip(outcomes).filter(|(branch, _)| self.accepts_type(branch, &node.value));
        match (of_this_type.next(), of_this_type.next()) {
            (Some((_, problems)), None) => self.out.extend(problems),
            _ => {
                let what = description.or_else(|| branches_description(branches)).map_or_else(
                    || "one of the allowed shapes".to_owned(),
                    |text| lowercase_first(text.trim_end_matches('.')),
                );
                self.report(node.at, format!("invalid value: {}, expected {what}", node.value), None);
            }
        }
    }

    /// Whether `schema`'s `type` (through `$ref`, or any of its `oneOf` /
    /// `anyOf` branches) admits the type of `tree`; a schema that says none
    /// admits any.
    fn accepts_type(&self, schema: &Value, tree: &Tree) -> bool {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
            return self.accepts_type(target, tree);
        }
        if let Some(types) = schema.get("type") {
            return type_accepts(types, tree);
        }
        let branches = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array);
        branches.is_none_or(|branches| branches.iter().any(|branch| self.accepts_type(branch, tree)))
    }
}

#[derive(Clone, Copy)]
enum Combine {
    ExactlyOne,
    AtLeastOne,
}

/// For branches that each only require one field (`http` or `tcp`), those
/// fields.
fn required_names(branches: &[Value]) -> Option<Vec<&str>> {
    branches
        .iter()
        .map(|branch| match branch.get("required")?.as_array()?.as_slice() {
            [Value::String(name)] => Some(name.as_str()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .filter(|names| !names.is_empty())
}

/// A description as the end of a sentence: "A reference…" reads "a reference…".
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

fn branches_description(branches: &[Value]) -> Option<&str> {
    branches.iter().find_map(|branch| branch.get("description").and_then(Value::as_str))
}

/// A pattern of the schemas and the Rust rule it restates: the walker uses the
/// rule, whose words say what is wrong (the same words as the set checks').
/// Given the value's path and text, the problem.
struct PatternRule {
    pattern: &'static str,
    problem: fn(&str, &str) -> Option<String>,
}

const PATTERN_RULES: [PatternRule; 7] = [
    PatternRule {
        pattern: NAME_PATTERN,
        problem: |path, text| name_problem(text).map(|problem| format!("{path} \"{text}\" {problem}")),
    },
    PatternRule { pattern: DURATION_PATTERN, problem: |_, text| DurationSpec::parse(text).err() },
    PatternRule { pattern: MAC_PATTERN, problem: |_, text| MacAddress::parse(text).err() },
    PatternRule {
        pattern: URL_PATH_PATTERN,
        problem: |path, text| url_path_problem(text).map(|problem| format!("{path} \"{text}\" {problem}")),
    },
    PatternRule {
        pattern: ENV_NAME_PATTERN,
        problem: |path, text| env_name_problem(text).map(|problem| format!("{path} name \"{text}\" {problem}")),
    },
    PatternRule {
        pattern: HTTP_URL_PATTERN,
        problem: |path, text| http_url_problem(text).map(|problem| format!("{path} \"{text}\" {problem}")),
    },
    PatternRule {
        pattern: TAG_PATTERN,
        problem: |_, text| tag_problem(text).map(|problem| format!("allowTags entry \"{text}\" {problem}")),
    },
];

/// Why `text` at `path` breaks `pattern`, for the patterns the walker knows.
fn pattern_problem(pattern: &str, path: &str, text: &str) -> Option<String> {
    PATTERN_RULES.iter().find(|rule| rule.pattern == pattern).and_then(|rule| (rule.problem)(path, text))
}

fn type_accepts(types: &Value, tree: &Tree) -> bool {
    let accepts = |name: &str| match name {
        "null" => matches!(tree, Tree::Null),
        "boolean" => matches!(tree, Tree::Bool(_)),
        "integer" => matches!(tree, Tree::Int(_)),
        "number" => matches!(tree, Tree::Int(_) | Tree::Float(_)),
        "string" => matches!(tree, Tree::Text(_)),
        "array" => matches!(tree, Tree::List(_)),
        "object" => matches!(tree, Tree::Mapping(_)),
        _ => true,
    };
    match types {
        Value::String(name) => accepts(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(accepts),
        _ => true,
    }
}

fn type_names(types: &Value) -> String {
    let name = |name: &str| {
        match name {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "a boolean",
            "null" => "nothing",
            other => other,
        }
        .to_owned()
    };
    match types {
        Value::String(one) => name(one),
        Value::Array(many) => many.iter().filter_map(Value::as_str).map(name).collect::<Vec<_>>().join(" or "),
        other => other.to_string(),
    }
}

impl Tree {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Tree::Text(text), Value::String(wanted)) => text == wanted,
            (Tree::Bool(b), Value::Bool(wanted)) => b == wanted,
            (Tree::Int(n), Value::Number(wanted)) => wanted.as_i64().is_some_and(|w| i128::from(w) == *n),
            (Tree::Null, Value::Null) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tree::Null => f.write_str("null"),
            Tree::Bool(b) => write!(f, "boolean `{b}`"),
            Tree::Int(n) => write!(f, "integer `{n}`"),
            Tree::Float(x) => write!(f, "floating point `{x}`"),
            Tree::Text(text) => write!(f, "string \"{text}\""),
            Tree::List(_) => f.write_str("a list"),
            Tree::Mapping(_) => f.write_str("a mapping"),
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TreeVisitor;
        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
                Tree::deserialize(deserializer)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Tree, E> {
                Ok(Tree::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Tree, E> {
                Ok(Tree::Int(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
                Ok(Tree::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Tree::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Tree::Mapping(entries))
            }
        }
        deserializer.deserialize_any(TreeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of `spec` in a Service, as `line: message`.
    fn service_problems(spec: &str) -> Vec<String> {
        let text = format!("apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n{spec}");
        let tree: Located<Tree> = serde_saphyr::from_str(&text).expect("YAML");
        let start = Pos { line: 1, column: 1, len: 1 };
        problems(Kind::Service, &tree, start).into_iter().map(|p| format!("{}: {}", p.at.line, p.message)).collect()
    }

    #[test]
    fn every_problem_of_a_document_is_found_at_its_own_line() {
        let table: [(&str, &str, &[&str]); 8] = [
            ("a valid spec", "  nodes: [a]\n  command: [web]\n", &[]),
            (
                "an unknown field, a bad enum value and a bad duration",
                "  nodes: [a]\n  command: [web]\n  restrat: always\n  restart: sometimes\n  stopGracePeriod: 10sec\n",
                &[
                    "8: unknown field `restrat`, expected one of backoff, command, env, healthCheck, nodeSelector, \
                     nodes, restart, stopGracePeriod, workingDir",
                    "9: unknown variant `sometimes`, expected one of always, on-failure, never",
                    "10: invalid duration \"10sec\": use whole numbers with units ms, s, m, h or d, e.g. \"10s\", \
                     \"5m\" or \"1h30m\"",
                ],
            ),
            (
                "a missing field, at the mapping that lacks it",
                "  nodes: [a]\n  restart: never\n",
                &["5: missing field `command`"],
            ),
            (
                "http and tcp, and a port out of range",
                "  nodes: [a]\n  command: [web]\n  healthCheck:\n    http: {port: 80}\n    tcp: {port: 0}\n",
                &["8: healthCheck takes http or tcp, not both", "10: healthCheck.tcp.port 0 is out of range 1-65535"],
            ),
            (
                "neither http nor tcp",
                "  nodes: [a]\n  command: [web]\n  healthCheck: {interval: 5s}\n",
                &["8: healthCheck needs http or tcp"],
            ),
            (
                "placed nowhere",
                "  nodes: []\n  command: []\n",
                &["6: nodes needs at least 1 item", "7: command needs at least 1 item"],
            ),
            (
                "a wrong type and a bad env name",
                "  nodes: a\n  command: [web]\n  env: {1X: \"1\"}\n",
                &[
                    "6: invalid type: string \"a\", expected a list",
                    "8: env name \"1X\" is not a valid variable name (letters, digits and '_', not starting with a digit)",
                ],
            ),
            (
                "env values of the wrong shape",
                "  nodes: [a]\n  command: [web]\n  env:\n    KEY: [a]\n    TOKEN: {env: A, file: B}\n",
                &[
                    "9: invalid value: a list, expected text (a number or boolean is taken as its text) or a secret \
                     reference",
                    "10: env.TOKEN takes env or file, not both",
                ],
            ),
        ];
        for (case, spec, expected) in table {
            assert_eq!(service_problems(spec), expected, "{case}");
        }
    }
}
