//! JSON Schemas of the manifests, generated from the model so the two never
//! disagree: one per kind, and one for any document.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use super::kinds::{CapabilitySpec, HandoffPolicySpec, MeshSpec, NodeSpec, ServiceSpec, SyncFolderSpec};
use super::object::{API_VERSION, Kind, Object};

/// The file that describes any document.
pub const ANY_SCHEMA_FILE: &str = "manifest.schema.json";

/// The schema file of one kind, e.g. `syncfolder.schema.json`.
pub fn schema_file(kind: Kind) -> String {
    format!("{}.schema.json", kind.as_str().to_ascii_lowercase())
}

/// The stable identifier of a schema: a URN, since nothing is hosted.
pub fn schema_id(name: &str) -> String {
    let version = API_VERSION.rsplit('/').next().unwrap_or(API_VERSION);
    format!("urn:agentmesh:schema:{version}:{name}")
}

/// Every schema file with its content (pretty JSON ending in a newline), in a
/// fixed order.
pub fn schema_files() -> Vec<(String, String)> {
    Kind::ALL
        .into_iter()
        .map(|kind| (schema_file(kind), kind_schema(kind)))
        .chain([(ANY_SCHEMA_FILE.to_owned(), with_id(generate::<AnyManifest>(), &schema_id("manifest")))])
        .map(|(file, schema)| {
            let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
            text.push('\n');
            (file, text)
        })
        .collect()
}

/// The schema of one kind's documents.
pub fn kind_schema(kind: Kind) -> Schema {
    let schema = match kind {
        Kind::Node => generate::<Object<NodeSpec>>(),
        Kind::Service => generate::<Object<ServiceSpec>>(),
        Kind::Capability => generate::<Object<CapabilitySpec>>(),
        Kind::SyncFolder => generate::<Object<SyncFolderSpec>>(),
        Kind::HandoffPolicy => generate::<Object<HandoffPolicySpec>>(),
        Kind::Mesh => generate::<Object<MeshSpec>>(),
    };
    with_id(schema, &schema_id(&kind.as_str().to_ascii_lowercase()))
}

/// `schema` with `$id` written after `$schema`, where a reader looks for it.
fn with_id(schema: Schema, id: &str) -> Schema {
    let Value::Object(fields) = schema.to_value() else { unreachable!("a root schema is an object") };
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        let after_schema = key == "$schema";
        out.insert(key, value);
        if after_schema {
            out.insert("$id".into(), id.into());
        }
    }
    Schema::from(out)
}

fn generate<T: JsonSchema>() -> Schema {
    SchemaGenerator::new(SchemaSettings::draft2020_12()).into_root_schema_for::<T>()
}

/// Any document: its `kind` chooses the kind's schema (`if`/`then`), so an
/// editor reports the problems of that kind only.
struct AnyManifest;

impl JsonSchema for AnyManifest {
    fn schema_name() -> Cow<'static, str> {
        "Manifest".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let kinds = [
            (Kind::Node, generator.subschema_for::<Object<NodeSpec>>()),
            (Kind::Service, generator.subschema_for::<Object<ServiceSpec>>()),
            (Kind::Capability, generator.subschema_for::<Object<CapabilitySpec>>()),
            (Kind::SyncFolder, generator.subschema_for::<Object<SyncFolderSpec>>()),
            (Kind::HandoffPolicy, generator.subschema_for::<Object<HandoffPolicySpec>>()),
            (Kind::Mesh, generator.subschema_for::<Object<MeshSpec>>()),
        ];
        let names: Vec<&str> = kinds.iter().map(|(kind, _)| kind.as_str()).collect();
        let by_kind: Vec<Value> = kinds
            .into_iter()
            .map(|(kind, schema)| {
                json!({
                    "if": { "properties": { "kind": { "const": kind.as_str() } }, "required": ["kind"] },
                    "then": schema
                })
            })
            .collect();
        json_schema!({
            "title": "Manifest",
            "description": "An agentmesh manifest document of any kind.",
            "type": "object",
            "properties": {
                "apiVersion": { "description": "The version of the manifest format.", "const": API_VERSION },
                "kind": { "description": "The kind of object this document declares.", "enum": names }
            },
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "allOf": by_kind
        })
    }
}
