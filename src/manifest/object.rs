//! The kube-style envelope every document shares: `apiVersion`, `kind`,
//! `metadata`, `spec`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::kinds::{CapabilitySpec, HandoffPolicySpec, MeshSpec, NodeSpec, ServiceSpec, SyncFolderSpec};
use super::values::{Located, NAME_PATTERN};
use crate::diagnostic::Pos;

/// The only API version this build understands.
pub const API_VERSION: &str = "agentmesh/v1alpha1";

/// The kinds of object a manifest may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Service,
    Capability,
    SyncFolder,
    HandoffPolicy,
    Mesh,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Node, Kind::Service, Kind::Capability, Kind::SyncFolder, Kind::HandoffPolicy, Kind::Mesh];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Service => "Service",
            Kind::Capability => "Capability",
            Kind::SyncFolder => "SyncFolder",
            Kind::HandoffPolicy => "HandoffPolicy",
            Kind::Mesh => "Mesh",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `spec` of one kind. Each kind's spec is paired with its `Kind` here,
/// beside `Manifest`, so the kind modules need nothing from the envelope.
pub trait Spec: DeserializeOwned + JsonSchema + Serialize + Clone + fmt::Debug {
    const KIND: Kind;
}

impl Spec for NodeSpec {
    const KIND: Kind = Kind::Node;
}
impl Spec for ServiceSpec {
    const KIND: Kind = Kind::Service;
}
impl Spec for CapabilitySpec {
    const KIND: Kind = Kind::Capability;
}
impl Spec for SyncFolderSpec {
    const KIND: Kind = Kind::SyncFolder;
}
impl Spec for HandoffPolicySpec {
    const KIND: Kind = Kind::HandoffPolicy;
}
impl Spec for MeshSpec {
    const KIND: Kind = Kind::Mesh;
}

/// `metadata`: the object's name and labels (what `nodeSelector.matchLabels`
/// matches).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: Located<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl JsonSchema for Metadata {
    fn schema_name() -> Cow<'static, str> {
        "Metadata".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "properties": {
                "name": {
                    "description": "1-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit.",
                    "type": "string",
                    "pattern": NAME_PATTERN
                },
                "labels": {
                    "description": "Labels that a Service's nodeSelector.matchLabels can match.",
                    "type": "object",
                    "additionalProperties": { "type": "string" }
                }
            },
            "required": ["name"],
            "additionalProperties": false
        })
    }
}

/// Where an object was declared: its file (as the user would open it) and the
/// position of its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub at: Pos,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.at.line, self.at.column)
    }
}

/// One declared object of kind `S`.
#[derive(Clone, Debug)]
pub struct Object<S> {
    pub metadata: Metadata,
    pub spec: S,
    pub origin: Origin,
    /// Where `spec` starts, for errors about the spec as a whole.
    pub spec_at: Pos,
}

impl<S: Spec> Object<S> {
    pub fn name(&self) -> &str {
        &self.metadata.name.value
    }
}

/// The wire shape of a document once its kind is known (or guessed: the parser
/// compares `kind` and `apiVersion` with what it expected).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObject<S> {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Located<S>,
}

impl<S: Spec> JsonSchema for Object<S> {
    fn schema_name() -> Cow<'static, str> {
        S::KIND.as_str().into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let described = |mut schema: Schema, description: &str| {
            schema.insert("description".into(), description.into());
            schema
        };
        json_schema!({
            "title": S::KIND.as_str(),
            "type": "object",
            "properties": {
                "apiVersion": { "description": "The version of the manifest format.", "const": API_VERSION },
                "kind": { "description": "The kind of object this document declares.", "const": S::KIND.as_str() },
                "metadata": described(generator.subschema_for::<Metadata>(), "The object's name and labels."),
                "spec": described(generator.subschema_for::<S>(), "What the object should be.")
            },
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "additionalProperties": false
        })
    }
}

/// Any declared object.
#[derive(Clone, Debug)]
pub enum Manifest {
    Node(Object<NodeSpec>),
    Service(Object<ServiceSpec>),
    Capability(Object<CapabilitySpec>),
    SyncFolder(Object<SyncFolderSpec>),
    HandoffPolicy(Object<HandoffPolicySpec>),
    Mesh(Object<MeshSpec>),
}

impl Manifest {
    pub fn kind(&self) -> Kind {
        match self {
            Manifest::Node(_) => Kind::Node,
            Manifest::Service(_) => Kind::Service,
            Manifest::Capability(_) => Kind::Capability,
            Manifest::SyncFolder(_) => Kind::SyncFolder,
            Manifest::HandoffPolicy(_) => Kind::HandoffPolicy,
            Manifest::Mesh(_) => Kind::Mesh,
        }
    }

    pub fn metadata(&self) -> &Metadata {
        match self {
            Manifest::Node(o) => &o.metadata,
            Manifest::Service(o) => &o.metadata,
            Manifest::Capability(o) => &o.metadata,
            Manifest::SyncFolder(o) => &o.metadata,
            Manifest::HandoffPolicy(o) => &o.metadata,
            Manifest::Mesh(o) => &o.metadata,
        }
    }

    pub fn origin(&self) -> &Origin {
        match self {
            Manifest::Node(o) => &o.origin,
            Manifest::Service(o) => &o.origin,
            Manifest::Capability(o) => &o.origin,
            Manifest::SyncFolder(o) => &o.origin,
            Manifest::HandoffPolicy(o) => &o.origin,
            Manifest::Mesh(o) => &o.origin,
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata().name.value
    }

    /// `Kind/name`, as errors and the CLI print it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}
