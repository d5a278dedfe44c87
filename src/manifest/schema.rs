//! JSON Schemas of the manifests, generated from the model so the two never
//! disagree: one per kind, and one for any document.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::kinds::{CapabilitySpec, HandoffPolicySpec, MeshSpec, NodeSpec, ServiceSpec, SyncFolderSpec};
use super::object::{Kind, Object};

/// The file that describes any document.
pub const ANY_SCHEMA_FILE: &str = "manifest.schema.json";

/// The schema file of one kind, e.g. `syncfolder.schema.json`.
pub fn schema_file(kind: Kind) -> String {
    format!("{}.schema.json", kind.as_str().to_ascii_lowercase())
}

/// Every schema file with its content (pretty JSON ending in a newline), in a
/// fixed order.
pub fn schema_files() -> Vec<(String, String)> {
    let per_kind = [
        (Kind::Node, generate::<Object<NodeSpec>>()),
        (Kind::Service, generate::<Object<ServiceSpec>>()),
        (Kind::Capability, generate::<Object<CapabilitySpec>>()),
        (Kind::SyncFolder, generate::<Object<SyncFolderSpec>>()),
        (Kind::HandoffPolicy, generate::<Object<HandoffPolicySpec>>()),
        (Kind::Mesh, generate::<Object<MeshSpec>>()),
    ];
    per_kind
        .into_iter()
        .map(|(kind, schema)| (schema_file(kind), schema))
        .chain([(ANY_SCHEMA_FILE.to_owned(), generate::<AnyManifest>())])
        .map(|(file, schema)| {
            let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
            text.push('\n');
            (file, text)
        })
        .collect()
}

fn generate<T: JsonSchema>() -> Schema {
    SchemaGenerator::new(SchemaSettings::draft2020_12()).into_root_schema_for::<T>()
}

/// Any document: exactly one of the kinds.
struct AnyManifest;

impl JsonSchema for AnyManifest {
    fn schema_name() -> Cow<'static, str> {
        "Manifest".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An agentmesh manifest document of any kind.",
            "oneOf": [
                generator.subschema_for::<Object<NodeSpec>>(),
                generator.subschema_for::<Object<ServiceSpec>>(),
                generator.subschema_for::<Object<CapabilitySpec>>(),
                generator.subschema_for::<Object<SyncFolderSpec>>(),
                generator.subschema_for::<Object<HandoffPolicySpec>>(),
                generator.subschema_for::<Object<MeshSpec>>()
            ]
        })
    }
}
