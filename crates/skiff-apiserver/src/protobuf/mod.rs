//! Request bodies in `application/vnd.kubernetes.protobuf`: the `k8s\0` magic, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the k8s-pb
//! message. Decoded into the same JSON the JSON API takes, so everything after decoding
//! (validation, defaulting, storage) sees one format. Responses are never protobuf here.

pub(crate) mod json;
mod messages;

use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::Value;

use crate::error::ApiError;
use json::ToJson;

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The message type of a kind's protobuf bodies ([`crate::registry::Strategy::Protobuf`]).
pub trait ProtobufBody {
    /// The JSON object `raw` (the message bytes) stands for.
    fn decode_json(raw: &[u8]) -> Result<Value, String>;
}

impl<M: Message + Default + ToJson> ProtobufBody for M {
    fn decode_json(raw: &[u8]) -> Result<Value, String> {
        let msg = M::decode(raw).map_err(|e| e.to_string())?;
        Ok(msg
            .to_json()
            .unwrap_or_else(|| Value::Object(Default::default())))
    }
}

/// For kinds no client writes (read-only APIs): every protobuf body is refused.
pub struct NoProtobuf;

impl ProtobufBody for NoProtobuf {
    fn decode_json(_raw: &[u8]) -> Result<Value, String> {
        Err("this kind is read-only and has no protobuf encoding".into())
    }
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let payload = body.strip_prefix(MAGIC).ok_or_else(|| {
        bad(
            "provided object is not a Kubernetes protobuf message: missing the k8s magic prefix"
                .into(),
        )
    })?;
    let unknown = Unknown::decode(payload)
        .map_err(|e| bad(format!("unable to decode protobuf envelope: {e}")))?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(bad(format!(
            "unsupported protobuf content encoding {enc:?}"
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match crate::resources::find_kind(&api_version, &kind) {
        Some(served) => served.decode_protobuf(&raw)?,
        None => decode_other(&api_version, &kind, &raw)?,
    };
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// A body that is no served kind's object: the options and subresource bodies clients send
/// as protobuf, else 415 (as Kubernetes answers for types it has no protobuf form of).
fn decode_other(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ApiError> {
    use k8s_pb::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenReview};
    use k8s_pb::api::authorization::v1 as authz;
    use k8s_pb::api::autoscaling::v1::Scale;
    use k8s_pb::api::core::v1::Binding;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions;
    let decoded = match (api_version, kind) {
        // Options bodies: client-go types them with the group version of the resource.
        (_, "DeleteOptions") => DeleteOptions::decode_json(raw),
        ("autoscaling/v1", "Scale") => Scale::decode_json(raw),
        ("v1", "Binding") => Binding::decode_json(raw),
        ("authentication.k8s.io/v1", "TokenRequest") => TokenRequest::decode_json(raw),
        // `kubectl auth whoami` sends its SelfSubjectReview as protobuf.
        ("authentication.k8s.io/v1", "SelfSubjectReview") => SelfSubjectReview::decode_json(raw),
        ("authentication.k8s.io/v1", "TokenReview") => TokenReview::decode_json(raw),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            authz::SelfSubjectAccessReview::decode_json(raw)
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            authz::SelfSubjectRulesReview::decode_json(raw)
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            authz::SubjectAccessReview::decode_json(raw)
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            authz::LocalSubjectAccessReview::decode_json(raw)
        }
        _ => return Err(unsupported()),
    };
    decoded.map_err(|e| bad(format!("unable to decode {kind} from protobuf: {e}")))
}

/// 415 for a protobuf body of a type not decoded here, naming the formats that would work.
fn unsupported() -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::{apps, autoscaling, core};
    use k8s_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, msg: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(msg.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    /// What `kubectl create secret generic db --from-literal=password=hunter2` sends: Go's
    /// generated marshaller writes every non-pointer field, so empty strings and the zero
    /// creationTimestamp are on the wire too.
    #[test]
    fn kubectl_create_secret_body() {
        let secret = core::v1::Secret {
            metadata: Some(ObjectMeta {
                name: Some("db".into()),
                generate_name: Some(String::new()),
                namespace: Some(String::new()),
                uid: Some(String::new()),
                resource_version: Some(String::new()),
                generation: Some(0),
                creation_timestamp: Some(Time {
                    seconds: Some(-62_135_596_800),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            data: [("password".to_string(), b"hunter2".to_vec())].into(),
            r#type: Some(String::new()),
            ..Default::default()
        };
        let obj = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "generation": 0}, "data": {"password": "aHVudGVyMg=="}})
        );
    }

    /// `kubectl autoscale deployment web --max=5 --cpu-percent=50` posts autoscaling/v1.
    /// `kubectl auth whoami` posts its SelfSubjectReview as protobuf; a TokenReview may come so.
    #[test]
    fn identity_review_bodies() {
        use k8s_pb::api::authentication::v1 as authn;
        let whoami = envelope(
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            &authn::SelfSubjectReview::default(),
        );
        let r = decode(&whoami).unwrap();
        assert_eq!(
            (r["apiVersion"].as_str(), r["kind"].as_str()),
            (Some("authentication.k8s.io/v1"), Some("SelfSubjectReview"))
        );
        let review = authn::TokenReview {
            spec: Some(authn::TokenReviewSpec {
                token: Some("abc".into()),
                audiences: vec!["vault".into()],
            }),
            ..Default::default()
        };
        let r = decode(&envelope(
            "authentication.k8s.io/v1",
            "TokenReview",
            &review,
        ))
        .unwrap();
        assert_eq!(r["spec"], json!({"token": "abc", "audiences": ["vault"]}));
    }

    #[test]
    fn kubectl_autoscale_body() {
        let hpa = autoscaling::v1::HorizontalPodAutoscaler {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            }),
            spec: Some(autoscaling::v1::HorizontalPodAutoscalerSpec {
                scale_target_ref: Some(autoscaling::v1::CrossVersionObjectReference {
                    kind: Some("Deployment".into()),
                    name: Some("web".into()),
                    api_version: Some("apps/v1".into()),
                }),
                min_replicas: None,
                max_replicas: Some(5),
                target_cpu_utilization_percentage: Some(50),
            }),
            status: None,
        };
        let obj = decode(&envelope("autoscaling/v1", "HorizontalPodAutoscaler", &hpa)).unwrap();
        assert_eq!(obj["apiVersion"], "autoscaling/v1");
        assert_eq!(
            obj["spec"],
            json!({"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50})
        );
    }

    /// Bytes `kubectl create secret generic db --from-literal=password=hunter2` (kubectl
    /// 1.32.4) sent to a logging server.
    const KUBECTL_CREATE_SECRET: &[u8] = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x2b\x0a\x12\x0a\x02db\x12\x00\
        \x1a\x00\x22\x00\x2a\x002\x008\x00B\x00\x12\x13\x0a\x08password\x12\x07hunter2\x1a\x00\x1a\x00\x22\x00";

    /// Bytes `kubectl autoscale deployment web --max=5 --cpu-percent=50` (kubectl 1.32.4)
    /// sent to a logging server.
    const KUBECTL_AUTOSCALE: &[u8] = b"k8s\x00\x0a\x29\x0a\x0eautoscaling/v1\x12\x17HorizontalPodAutoscaler\x12\x3d\
        \x0a\x13\x0a\x03web\x12\x00\x1a\x00\x22\x00\x2a\x002\x008\x00B\x00\x12 \x0a\x1a\x0a\x0aDeployment\x12\x03web\
        \x1a\x07apps/v1\x18\x05 2\x1a\x04\x18\x00 \x00\x1a\x00\x22\x00";

    #[test]
    fn captured_kubectl_bodies_decode_like_their_json() {
        assert_eq!(
            decode(KUBECTL_CREATE_SECRET).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "generation": 0},
                "data": {"password": "aHVudGVyMg=="}})
        );
        let hpa = decode(KUBECTL_AUTOSCALE).unwrap();
        assert_eq!(hpa["apiVersion"], "autoscaling/v1");
        assert_eq!(hpa["metadata"], json!({"name": "web", "generation": 0}));
        assert_eq!(
            hpa["spec"],
            json!({"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "maxReplicas": 5, "targetCPUUtilizationPercentage": 50})
        );
        let kind =
            crate::resources::find_kind("autoscaling/v1", "HorizontalPodAutoscaler").unwrap();
        assert!(kind.validate(&hpa, None).is_ok());
    }

    #[test]
    fn deployment_with_nested_pod_template() {
        let container = core::v1::Container {
            name: Some("web".into()),
            image: Some("nginx:1.25".into()),
            ports: vec![core::v1::ContainerPort {
                container_port: Some(80),
                protocol: Some("TCP".into()),
                ..Default::default()
            }],
            liveness_probe: Some(core::v1::Probe {
                handler: Some(core::v1::ProbeHandler {
                    http_get: Some(core::v1::HttpGetAction {
                        path: Some("/healthz".into()),
                        port: Some(IntOrString {
                            r#type: Some(1),
                            int_val: None,
                            str_val: Some("http".into()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                period_seconds: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        let deployment = apps::v1::Deployment {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(apps::v1::DeploymentSpec {
                replicas: Some(0),
                template: Some(core::v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(core::v1::PodSpec {
                        containers: vec![container],
                        host_ipc: Some(true),
                        volumes: vec![core::v1::Volume {
                            name: Some("data".into()),
                            volume_source: Some(core::v1::VolumeSource {
                                downward_api: Some(Default::default()),
                                ..Default::default()
                            }),
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let obj = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(obj["spec"]["replicas"], 0, "explicit zero survives");
        let pod = &obj["spec"]["template"]["spec"];
        assert_eq!(pod["hostIPC"], true);
        assert_eq!(
            pod["volumes"][0],
            json!({"name": "data", "downwardAPI": {}}),
            "inline VolumeSource"
        );
        assert_eq!(
            pod["containers"][0]["livenessProbe"],
            json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}),
            "inline ProbeHandler"
        );
        assert_eq!(
            pod["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        // The decoded object is well-typed for the JSON validator too.
        let info = crate::resources::find_kind("apps/v1", "Deployment")
            .unwrap()
            .info();
        assert!(crate::validation::unknown_fields(info, &obj).is_empty());
    }

    #[test]
    fn garbage_and_bad_magic_are_bad_requests() {
        for body in [
            &b""[..],
            b"{\"kind\":\"Secret\"}",
            b"k8s\0\xff\xff\xff\xff",
            b"k8s",
        ] {
            let err = decode(body).unwrap_err();
            assert_eq!(
                (err.code, err.reason.as_str()),
                (400, "BadRequest"),
                "{body:?}"
            );
        }
        let cm = core::v1::ConfigMap::default();
        let unknown = decode(&envelope("v1", "Nope", &cm)).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.reason.as_str()),
            (415, "UnsupportedMediaType")
        );
    }

    /// `kubectl debug POD --copy-to=… --replace` deletes the original pod with these options.
    #[test]
    fn delete_options_and_scale_decode() {
        use k8s_pb::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: Some("Foreground".into()),
            preconditions: Some(Preconditions {
                uid: Some("u1".into()),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        for av in ["meta.k8s.io/v1", "v1", "apps/v1"] {
            let obj = decode(&envelope(av, "DeleteOptions", &opts)).unwrap();
            assert_eq!(
                obj,
                json!({"apiVersion": av, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "propagationPolicy": "Foreground", "preconditions": {"uid": "u1"}, "dryRun": ["All"]})
            );
        }
        let scale = autoscaling::v1::Scale {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            }),
            spec: Some(autoscaling::v1::ScaleSpec { replicas: Some(3) }),
            status: None,
        };
        let obj = decode(&envelope("autoscaling/v1", "Scale", &scale)).unwrap();
        assert_eq!(obj["spec"], json!({"replicas": 3}));
    }

    #[test]
    fn every_writable_kind_decodes() {
        let writable = crate::resources::all()
            .filter(|k| k.backend() == crate::registry::Backend::Store)
            .map(|k| k.info());
        for info in writable {
            let meta = ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            };
            let body = envelope(
                &info.api_version(),
                info.kind,
                &core::v1::ConfigMap {
                    metadata: Some(meta),
                    ..Default::default()
                },
            );
            let obj = decode(&body).unwrap_or_else(|e| panic!("{}: {}", info.kind, e.message));
            assert_eq!(obj["metadata"]["name"], "x", "{}", info.kind);
        }
    }
}
