//! The OpenAPI schemas of the served kinds, taken from k8s-openapi's `schemars` impls, and a
//! walker over them. Patching, server-side apply, defaulting and unknown-field detection
//! navigate objects with it; it must not know any per-field semantics itself (those live in
//! [`crate::patch::meta`]).

use std::sync::OnceLock;

use k8s_openapi::schemars::{generate::SchemaSettings, SchemaGenerator};
use serde_json::{Map, Value};

use crate::resources::ResourceInfo;

/// All definitions plus the root definition name of every served kind.
struct Registry {
    defs: Map<String, Value>,
    roots: Vec<(String, &'static str, String)>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut gen = SchemaGenerator::new(SchemaSettings::draft2020_12());
        let roots = crate::resources::all()
            .map(|k| {
                let name = k.schema(&mut gen);
                (k.info().api_version(), k.info().kind, name)
            })
            .collect();
        Registry {
            defs: gen.take_definitions(true),
            roots,
        }
    })
}

/// What a schema node describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A struct with named properties.
    Struct,
    /// A map with arbitrary string keys (`additionalProperties`).
    Map,
    /// A list.
    List,
    /// A scalar, including int-or-string, quantities and times.
    Scalar,
    /// Free-form JSON (RawExtension, FieldsV1): anything goes.
    Any,
}

/// A position in the schema of a kind: the schema object and the name of the definition it
/// belongs to (patch metadata is keyed by definition name and field, like Go struct tags).
#[derive(Debug, Clone, Copy)]
pub struct Node {
    schema: &'static Value,
    def: Option<&'static str>,
}

impl Node {
    /// The schema of a served kind.
    pub fn root(info: &ResourceInfo) -> Option<Node> {
        Self::for_kind(&info.api_version(), info.kind)
    }

    /// The schema of `apiVersion` + `kind`, if it is a served kind.
    pub fn for_kind(api_version: &str, kind: &str) -> Option<Node> {
        let reg = registry();
        let (_, _, name) = reg
            .roots
            .iter()
            .find(|(av, k, _)| *av == api_version && *k == kind)?;
        Self::definition(name)
    }

    fn definition(name: &str) -> Option<Node> {
        let (name, schema) = registry().defs.get_key_value(name)?;
        Some(
            Node {
                schema,
                def: Some(name.as_str()),
            }
            .resolve(),
        )
    }

    fn resolve(self) -> Node {
        match self.schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .rsplit('/')
                .next()
                .and_then(Self::definition)
                .unwrap_or(Node {
                    schema: &Value::Null,
                    def: None,
                }),
            None => self,
        }
    }

    /// The definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub fn def(&self) -> Option<&'static str> {
        self.def
    }

    pub fn shape(&self) -> Shape {
        let s = self.schema;
        if s.get("x-kubernetes-int-or-string").is_some() {
            return Shape::Scalar;
        }
        if s.get("properties").is_some() {
            return Shape::Struct;
        }
        match s.get("type").and_then(Value::as_str) {
            Some("array") => Shape::List,
            Some("object") if s.get("additionalProperties").is_some() => Shape::Map,
            Some("object") | None => Shape::Any,
            Some(_) => Shape::Scalar,
        }
    }

    /// The schema of property `name` of a struct.
    pub fn field(&self, name: &str) -> Option<Node> {
        let schema = self.schema.get("properties")?.get(name)?;
        Some(Node { schema, def: None }.resolve().or_within(self.def))
    }

    /// Property names of a struct.
    pub fn field_names(&self) -> impl Iterator<Item = &'static str> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<Node> {
        let schema = self.schema.get("items")?;
        Some(Node { schema, def: None }.resolve().or_within(self.def))
    }

    /// The schema of a map's values.
    pub fn values(&self) -> Option<Node> {
        let schema = self.schema.get("additionalProperties")?;
        Some(Node { schema, def: None }.resolve().or_within(self.def))
    }

    /// Inline (non-`$ref`) subschemas stay attributed to the definition that holds them.
    fn or_within(self, def: Option<&'static str>) -> Node {
        if self.def.is_some() {
            self
        } else {
            Node {
                schema: self.schema,
                def,
            }
        }
    }

    /// The `format` of a scalar (`int32`, `int64`, `byte`, `date-time`, …).
    pub fn format(&self) -> Option<&'static str> {
        self.schema.get("format").and_then(Value::as_str)
    }

    /// The JSON type a scalar expects: `string`, `integer`, `number`, `boolean`, or None for
    /// int-or-string.
    pub fn scalar_type(&self) -> Option<&'static str> {
        if self.schema.get("x-kubernetes-int-or-string").is_some() {
            return None;
        }
        self.schema.get("type").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_from_deployment_to_container_ports() {
        let d = Node::for_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.def(), Some("io.k8s.api.apps.v1.Deployment"));
        let spec = d
            .field("spec")
            .unwrap()
            .field("template")
            .unwrap()
            .field("spec")
            .unwrap();
        assert_eq!(spec.def(), Some("io.k8s.api.core.v1.PodSpec"));
        let containers = spec.field("containers").unwrap();
        assert_eq!(containers.shape(), Shape::List);
        assert_eq!(containers.def(), Some("io.k8s.api.core.v1.PodSpec"));
        let port = containers
            .items()
            .unwrap()
            .field("ports")
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(port.def(), Some("io.k8s.api.core.v1.ContainerPort"));
        assert_eq!(
            port.field("containerPort").unwrap().scalar_type(),
            Some("integer")
        );
        assert!(port.field("bogus").is_none());
    }

    #[test]
    fn shapes_of_maps_scalars_and_free_form() {
        let pod = Node::for_kind("v1", "Pod").unwrap();
        let meta = pod.field("metadata").unwrap();
        assert_eq!(meta.field("labels").unwrap().shape(), Shape::Map);
        assert_eq!(meta.field("name").unwrap().shape(), Shape::Scalar);
        let probe_port = pod
            .field("spec")
            .and_then(|s| s.field("containers"))
            .and_then(|c| c.items())
            .and_then(|c| c.field("livenessProbe"))
            .and_then(|p| p.field("httpGet"))
            .and_then(|h| h.field("port"))
            .unwrap();
        assert_eq!(probe_port.shape(), Shape::Scalar);
        assert_eq!(probe_port.scalar_type(), None);
        assert!(Node::for_kind("v1", "Nope").is_none());
    }
}
