//! Docker's `filters` query parameter: a JSON object of filter name → values, in the current
//! form `{"label":["a=b"]}` or the legacy one `{"label":{"a=b":true}}`.

use std::collections::HashMap;

use crate::error::{EngineError, Result};

/// Parsed filters; an empty set matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    /// Parses the `filters` query parameter (absent or empty = no filters).
    pub fn parse(json: Option<&str>) -> Result<Filters> {
        let json = match json.map(str::trim) {
            None | Some("") => return Ok(Filters::default()),
            Some(j) => j,
        };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| EngineError::invalid(format!("invalid filter: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| EngineError::invalid("invalid filter: not an object"))?;
        let mut out = HashMap::new();
        for (key, values) in object {
            let list: Vec<String> = match values {
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(map) => map
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(EngineError::invalid(format!("invalid filter '{key}'"))),
            };
            out.insert(key.clone(), list);
        }
        Ok(Filters(out))
    }

    /// Builds filters from pairs (for callers that are not HTTP handlers).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Filters {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        Filters(out)
    }

    /// The values given for `key`.
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses filter names outside `allowed` with Docker's message.
    pub(crate) fn validate(&self, allowed: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(EngineError::invalid(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// A boolean filter (`dangling=true`): `default` when absent; Docker's error when a value
    /// is not one of `1`/`true`/`0`/`false` or the values disagree.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        let values = match self.0.get(key) {
            None => return Ok(default),
            Some(v) => v,
        };
        let truthy = values.iter().any(|v| v == "1" || v == "true");
        let falsy = values.iter().any(|v| v == "0" || v == "false");
        if truthy == falsy {
            // moby's invalidFilter: `invalid filter 'dangling=[a b]'`.
            return Err(EngineError::invalid(format!(
                "invalid filter '{key}=[{}]'",
                values.join(" ")
            )));
        }
        Ok(truthy)
    }

    /// Whether every value of `key` is accepted by `pred` (any of them, Docker-style: values
    /// of one key are OR-ed, different keys AND-ed). True when `key` is not filtered on.
    pub(crate) fn any(&self, key: &str, mut pred: impl FnMut(&str) -> bool) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| pred(v))
    }

    /// The label filters of the prune endpoints: every `label` matches and, when `label!` is
    /// given, not every `label!` does (moby's `matchLabels`).
    pub(crate) fn prune_labels_match(&self, labels: &HashMap<String, String>) -> bool {
        self.labels_match("label", labels)
            && (self.get("label!").is_empty() || !self.labels_match("label!", labels))
    }

    /// The `label` filters (`key` or `key=value`, all must match) against `labels`.
    pub(crate) fn labels_match(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        self.get(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(f.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_wire_forms() {
        let new = Filters::parse(Some(r#"{"label":["a=b"],"status":["running"]}"#)).unwrap();
        let old =
            Filters::parse(Some(r#"{"label":{"a=b":true},"status":{"running":true}}"#)).unwrap();
        assert_eq!(new, old);
        assert_eq!(new.get("status"), ["running"]);
        assert!(Filters::parse(Some("[1]")).is_err());
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
    }

    #[test]
    fn labels_and_or_semantics() {
        let f = Filters::from_pairs([
            ("label", "a=b"),
            ("label", "c"),
            ("status", "running"),
            ("status", "exited"),
        ]);
        let mut labels = HashMap::from([("a".to_string(), "b".to_string())]);
        assert!(!f.labels_match("label", &labels));
        labels.insert("c".into(), "x".into());
        assert!(f.labels_match("label", &labels));
        assert!(f.any("status", |s| s == "exited"));
        assert!(!f.any("status", |s| s == "paused"));
        assert!(f.any("name", |_| false));
        assert!(f.validate(&["label", "status"]).is_ok());
        assert!(f.validate(&["label"]).is_err());
    }

    #[test]
    fn booleans_take_docker_spellings_only() {
        let f = Filters::from_pairs([("dangling", "true"), ("all", "0"), ("bad", "yes")]);
        assert!(f.bool_or("dangling", false).unwrap());
        assert!(!f.bool_or("all", true).unwrap());
        assert!(f.bool_or("absent", true).unwrap());
        let err = f.bool_or("bad", false).unwrap_err().to_string();
        assert_eq!(err, "invalid filter 'bad=[yes]'");
        let both = Filters::from_pairs([("dangling", "true"), ("dangling", "false")]);
        assert!(both.bool_or("dangling", false).is_err());
    }
}
