//! k8s-pb values → the JSON the API speaks: scalars and collections, plus the wire types
//! whose JSON form differs from their message shape (Time, MicroTime, Duration, Quantity,
//! IntOrString, RawExtension, FieldsV1). Empty strings, lists and maps are left out, as Go's
//! `omitempty` leaves them out; numbers and booleans are kept, because for pointer fields
//! (`replicas: 0`, `automountServiceAccountToken: false`) they mean something.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::apimachinery::pkg::{api::resource, apis::meta::v1 as meta, runtime, util::intstr};
use serde_json::{Map, Value};

/// A message or field value as JSON; None when the field is left out.
pub trait ToJson {
    fn to_json(&self) -> Option<Value>;

    /// The value as an element of a list, where an empty value keeps its place (RBAC's
    /// `apiGroups: [""]` names the core group).
    fn to_json_element(&self) -> Value {
        self.to_json().unwrap_or(Value::Null)
    }
}

/// Sets `m[key]` to the JSON of `v`, if any.
pub fn put<T: ToJson + ?Sized>(m: &mut Map<String, Value>, key: &str, v: &T) {
    if let Some(j) = v.to_json() {
        m.insert(key.to_string(), j);
    }
}

/// Merges the fields of an embedded struct (Go's inline JSON) into `m`.
pub fn inline<T: ToJson>(m: &mut Map<String, Value>, v: &Option<T>) {
    if let Some(Value::Object(inner)) = v.as_ref().and_then(ToJson::to_json) {
        m.extend(inner);
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Option<Value> {
        self.as_ref().and_then(ToJson::to_json)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::Array(self.iter().map(ToJson::to_json_element).collect()))
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| {
            Value::Object(
                self.iter()
                    .map(|(k, v)| (k.clone(), v.to_json().unwrap_or(Value::Null)))
                    .collect(),
            )
        })
    }
}

/// Byte fields (Secret data, ConfigMap binaryData) are base64 strings in JSON.
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl ToJson for String {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::String(self.clone()))
    }

    fn to_json_element(&self) -> Value {
        Value::String(self.clone())
    }
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Option<Value> {
                Some(serde_json::json!(self))
            }
        }
    )*};
}
plain!(bool, i32, i64, f64);

/// Seconds of Go's zero `time.Time`, which encodes an unset non-pointer timestamp.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Go writes its zero time as an empty message (or, from older encoders, as the zero
/// time's seconds); both mean "unset", as `null` does in JSON.
fn timestamp(seconds: Option<i64>, nanos: Option<i32>, micros: bool) -> Option<Value> {
    let s = seconds.filter(|s| *s != GO_ZERO_TIME)?;
    let t = chrono::DateTime::from_timestamp(s, nanos.unwrap_or(0).max(0) as u32)?;
    let format = if micros {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Some(Value::String(t.format(format).to_string()))
}

impl ToJson for meta::Time {
    fn to_json(&self) -> Option<Value> {
        timestamp(self.seconds, self.nanos, false)
    }
}

impl ToJson for meta::MicroTime {
    fn to_json(&self) -> Option<Value> {
        timestamp(self.seconds, self.nanos, true)
    }
}

/// Go's `time.Duration.String()` form: `1h2m3s`, `1m30s`, `500ms`, `0s`.
impl ToJson for meta::Duration {
    fn to_json(&self) -> Option<Value> {
        let ns = self.duration.unwrap_or(0);
        let sign = if ns < 0 { "-" } else { "" };
        let ns = ns.unsigned_abs();
        let text = if ns == 0 {
            "0s".to_string()
        } else if ns < 1_000_000_000 {
            let (n, unit) = if ns < 1_000 {
                (ns as f64, "ns")
            } else if ns < 1_000_000 {
                (ns as f64 / 1e3, "µs")
            } else {
                (ns as f64 / 1e6, "ms")
            };
            format!("{sign}{n}{unit}")
        } else {
            let (h, rem) = (ns / 3_600_000_000_000, ns % 3_600_000_000_000);
            let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
            let secs = rem as f64 / 1e9;
            match (h, m) {
                (0, 0) => format!("{sign}{secs}s"),
                (0, m) => format!("{sign}{m}m{secs}s"),
                (h, m) => format!("{sign}{h}h{m}m{secs}s"),
            }
        };
        Some(Value::String(text))
    }
}

impl ToJson for resource::Quantity {
    fn to_json(&self) -> Option<Value> {
        self.string.clone().map(Value::String)
    }
}

impl ToJson for intstr::IntOrString {
    fn to_json(&self) -> Option<Value> {
        match self.r#type {
            Some(1) => Some(Value::String(self.str_val.clone().unwrap_or_default())),
            _ => Some(serde_json::json!(self.int_val.unwrap_or(0))),
        }
    }
}

/// Embedded JSON documents (RawExtension, FieldsV1) are themselves JSON.
fn raw_json(raw: &Option<Vec<u8>>) -> Option<Value> {
    let raw = raw.as_ref().filter(|r| !r.is_empty())?;
    Some(
        serde_json::from_slice(raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned())),
    )
}

impl ToJson for runtime::RawExtension {
    fn to_json(&self) -> Option<Value> {
        raw_json(&self.raw)
    }
}

impl ToJson for meta::FieldsV1 {
    fn to_json(&self) -> Option<Value> {
        raw_json(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_print_like_go() {
        let t = meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(5),
        };
        assert_eq!(
            t.to_json(),
            Some(Value::String("2023-11-14T22:13:20Z".into()))
        );
        let zero = meta::Time {
            seconds: Some(GO_ZERO_TIME),
            nanos: Some(0),
        };
        assert_eq!(zero.to_json(), None);
        assert_eq!(meta::Time::default().to_json(), None, "empty message");
        let mt = meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_000),
        };
        assert_eq!(
            mt.to_json(),
            Some(Value::String("2023-11-14T22:13:20.123456Z".into()))
        );
        let d = |ns: i64| meta::Duration { duration: Some(ns) }.to_json().unwrap();
        assert_eq!(d(90_000_000_000), "1m30s");
        assert_eq!(d(3_600_000_000_000), "1h0m0s");
        assert_eq!(d(500_000_000), "500ms");
        assert_eq!(d(0), "0s");
    }

    #[test]
    fn inpod_empty_strings_keep_their_place_in_lists() {
        // `kubectl create role --resource=pods` sends apiGroups [""] (the core group).
        let groups = vec![String::new(), "apps".to_string()];
        assert_eq!(groups.to_json(), Some(serde_json::json!(["", "apps"])));
        assert_eq!(String::new().to_json(), None, "an empty field is left out");
    }

    #[test]
    fn int_or_string_quantity_and_bytes() {
        let port = intstr::IntOrString {
            r#type: Some(0),
            int_val: Some(8080),
            str_val: Some(String::new()),
        };
        assert_eq!(port.to_json(), Some(serde_json::json!(8080)));
        let named = intstr::IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: Some("http".into()),
        };
        assert_eq!(named.to_json(), Some(serde_json::json!("http")));
        assert_eq!(
            resource::Quantity {
                string: Some("500m".into())
            }
            .to_json(),
            Some(serde_json::json!("500m"))
        );
        assert_eq!(b"hi".to_vec().to_json(), Some(serde_json::json!("aGk=")));
        assert_eq!(String::new().to_json(), None);
        assert_eq!(Vec::<String>::new().to_json(), None);
    }
}
