//! The parts of an object's JSON the cache reads (its labels and field-selector values),
//! parsed without building the rest: a pod's whole `Value` tree is a few hundred small
//! allocations on every write the cache applies, of which it keeps a handful of strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The JSON object `json` with only the members on `paths` (dotted object keys): a member on
/// no path is skipped unparsed, one where a path ends is kept whole, and a value that is
/// not an object where a path goes on is kept as null (nothing is under it). Reading a path
/// from the result (as [`crate::selector::field_value`] does) gives what it gives on the
/// whole object.
pub(super) fn pruned(json: &[u8], paths: &[&str]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = Keep(paths).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Keeps the members on its paths (relative to the value it reads).
struct Keep<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.iter().any(|p| p.is_empty()) {
            return Value::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

/// The rest of `path` under member `key`, if `path` goes through it.
fn under<'p>(path: &'p str, key: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(key)?;
    match rest.strip_prefix('.') {
        Some(rest) => Some(rest),
        None => rest.is_empty().then_some(""),
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let paths: Vec<&str> = self.0.iter().filter_map(|p| under(p, &key)).collect();
            if paths.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value = map.next_value_seed(Keep(&paths))?;
                out.insert(key.into_owned(), value);
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pruned;
    use crate::selector::field_value;

    #[test]
    fn pruned_objects_give_the_same_labels_and_fields() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "a\"b"},
                "managedFields": [{"manager": "kubectl"}], "annotations": {"x": "y"}},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": [{"name": "c", "image": "i"}],
                "priority": 5},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "podIP": "10.0.0.1"},
            "source": "not an object"
        });
        let fields = [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.hostNetwork",
            "spec.priority",
            "spec.restartPolicy",
            "spec.unschedulable",
            "spec.containers",
            "status.phase",
            "status.podIPs",
            "status.podIP",
            "source.component",
            "metadata.name.deeper",
        ];
        let mut paths = fields.to_vec();
        paths.push("metadata.labels");
        let bytes = serde_json::to_vec(&pod).unwrap();
        let slim = pruned(&bytes, &paths).unwrap();
        assert_eq!(slim["metadata"]["labels"], pod["metadata"]["labels"]);
        for f in fields {
            assert_eq!(field_value(&slim, f), field_value(&pod, f), "{f}");
        }
        assert!(slim["metadata"].get("managedFields").is_none());
        assert!(slim.get("kind").is_none());
        assert!(pruned(b"{\"a\": 1", &paths).is_err());
        assert!(pruned(b"{} trailing", &paths).is_err());
    }
}
