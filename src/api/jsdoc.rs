//! The page's types: JSDoc `@typedef`s of the API description's schemas
//! (`openapi::document`), committed as `page/api-types.js` (`meshctl openapi
//! --types-out`), so the page's views name the very shapes the API answers.
//! The file holds comments only: the browser never loads it.

use serde_json::{Map, Value};

use super::openapi;

/// The committed file's text: every schema of the document, sorted by name.
pub(crate) fn types_text() -> String {
    let document = openapi::document();
    let schemas = document["components"]["schemas"].as_object().expect("the document has schemas");
    let mut out = String::from(
        "// The API's types for the page's JSDoc annotations, generated from the API\n\
         // description (docs/openapi.json) by `meshctl openapi --types-out\n\
         // src/api/page/api-types.js`; do not edit. Comments only: nothing loads it.\n",
    );
    for (name, schema) in schemas {
        out.push('\n');
        out.push_str(&typedef(name, schema));
    }
    out.push_str("\nexport {};\n");
    out
}

/// One `@typedef`: an object's properties one per line, anything else as a type.
fn typedef(name: &str, schema: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(description) = schema["description"].as_str() {
        lines.extend(description.lines().map(str::to_owned));
    }
    match schema.get("properties").and_then(Value::as_object) {
        Some(properties) if schema.get("oneOf").is_none() => {
            lines.push(format!("@typedef {{object}} {name}"));
            let required = required(schema);
            for (field, property) in properties {
                let field = if required.contains(&field.as_str()) { field.clone() } else { format!("[{field}]") };
                let about = property["description"].as_str().map(one_line).unwrap_or_default();
                lines.push(format!("@property {{{}}} {field}{about}", type_of(property)).trim_end().to_owned());
            }
        }
        _ => lines.push(format!("@typedef {{{}}} {name}", type_of(schema))),
    }
    let body: String =
        lines.iter().map(|line| format!(" *{}{line}\n", if line.is_empty() { "" } else { " " })).collect();
    format!("/**\n{body} */\n")
}

/// A schema as a type expression of JSDoc (TypeScript's flavour).
fn type_of(schema: &Value) -> String {
    let Some(fields) = schema.as_object() else { return "*".into() };
    if let Some(target) = fields.get("$ref").and_then(Value::as_str) {
        return target.rsplit('/').next().unwrap_or(target).to_owned();
    }
    if let Some(constant) = fields.get("const") {
        return constant.to_string();
    }
    if let Some(values) = fields.get("enum").and_then(Value::as_array) {
        return union(values.iter().map(Value::to_string));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = fields.get(key).and_then(Value::as_array) {
            return union(choices.iter().map(type_of));
        }
    }
    match fields.get("type") {
        Some(Value::Array(types)) => {
            union(types.iter().map(|single| type_of_named(single.as_str().unwrap_or_default(), fields)))
        }
        Some(Value::String(single)) => type_of_named(single, fields),
        _ => "*".into(),
    }
}

/// The type of one JSON type name, the rest of the schema `fields` saying more.
fn type_of_named(name: &str, fields: &Map<String, Value>) -> String {
    match name {
        "string" | "boolean" | "null" => name.to_owned(),
        "integer" | "number" => "number".into(),
        "array" => match fields.get("items") {
            Some(items) => format!("Array<{}>", type_of(items)),
            None => "Array<*>".into(),
        },
        "object" => match (fields.get("properties").and_then(Value::as_object), fields.get("additionalProperties")) {
            (Some(properties), _) => {
                let schema = Value::Object(fields.clone());
                let required = required(&schema);
                let members: Vec<String> = properties
                    .iter()
                    .map(|(field, property)| {
                        let optional = if required.contains(&field.as_str()) { "" } else { "?" };
                        format!("{field}{optional}: {}", type_of(property))
                    })
                    .collect();
                format!("{{{}}}", members.join(", "))
            }
            (None, Some(values)) if values.is_object() => format!("Object<string, {}>", type_of(values)),
            _ => "Object<string, *>".into(),
        },
        _ => "*".into(),
    }
}

fn required(schema: &Value) -> Vec<&str> {
    schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// `types` joined by `|`, each once, in their order.
fn union(types: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for single in types {
        if !seen.contains(&single) {
            seen.push(single);
        }
    }
    if seen.len() == 1 { seen.remove(0) } else { format!("({})", seen.join(" | ")) }
}

/// A property's description after its name: its lines joined.
fn one_line(description: &str) -> String {
    format!(" {}", description.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_of_schema_reads_as_its_jsdoc_type() {
        let table = [
            (json!({"$ref": "#/components/schemas/MeshNode"}), "MeshNode"),
            (json!({"type": "string"}), "string"),
            (json!({"type": ["string", "null"]}), "(string | null)"),
            (json!({"type": "integer", "format": "uint64"}), "number"),
            (json!({"type": "array", "items": {"$ref": "#/components/schemas/LogLine"}}), "Array<LogLine>"),
            (json!({"type": "object", "additionalProperties": {"type": "string"}}), "Object<string, string>"),
            (json!({"enum": ["pause", "resume"]}), "(\"pause\" | \"resume\")"),
            (
                json!({"type": "object", "properties": {"type": {"const": "live"}, "n": {"type": "number"}},
                    "required": ["type"]}),
                "{n?: number, type: \"live\"}",
            ),
            (json!({"oneOf": [{"type": "string"}, {"type": "null"}]}), "(string | null)"),
            (json!({"anyOf": [{"$ref": "#/x/A"}, {"type": "null"}]}), "(A | null)"),
            (json!({}), "*"),
            (json!(true), "*"),
        ];
        for (schema, expected) in table {
            assert_eq!(type_of(&schema), expected, "{schema}");
        }
    }

    #[test]
    fn an_object_is_a_typedef_with_a_property_a_line_optional_ones_in_brackets() {
        let schema = json!({"description": "One node.", "type": "object",
            "properties": {"name": {"type": "string"}, "why": {"type": ["string", "null"], "description": "Why\nnot."}},
            "required": ["name"]});
        assert_eq!(
            typedef("Node", &schema),
            "/**\n * One node.\n * @typedef {object} Node\n * @property {string} name\n \
             * @property {(string | null)} [why] Why not.\n */\n"
        );
    }

    #[test]
    fn the_committed_page_types_are_the_generated_ones() {
        assert!(
            include_str!("page/api-types.js") == types_text(),
            "src/api/page/api-types.js differs: run `cargo run -- openapi --types-out src/api/page/api-types.js`"
        );
    }
}
