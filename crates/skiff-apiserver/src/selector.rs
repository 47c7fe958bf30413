//! Label and field selectors as they appear in `?labelSelector=` and `?fieldSelector=`, and
//! the conversion of a `LabelSelector` object to its string form.
//!
//! Parsing and matching only; which fields a kind supports is listed here too.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::registry::Kind;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {why} in \"{s}\""))
        };
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            if let Some(key) = term.strip_prefix('!') {
                reqs.push((valid_key(key.trim()).map_err(|e| bad(&e))?, Op::NotExists));
                continue;
            }
            let (key, op) = if let Some((k, v)) = term.split_once("!=") {
                (k, Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once("==") {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once('=') {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, set)) = split_set(term, " notin ") {
                (k, Op::NotIn(parse_set(set).map_err(|e| bad(&e))?))
            } else if let Some((k, set)) = split_set(term, " in ") {
                (k, Op::In(parse_set(set).map_err(|e| bad(&e))?))
            } else {
                (term, Op::Exists)
            };
            reqs.push((valid_key(key.trim()).map_err(|e| bad(&e))?, op));
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_with(|k| labels.get(k).and_then(Value::as_str))
    }

    /// Whether labels read through `label` (the value of a key, None when absent) match.
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|(k, op)| {
            let v = label(k);
            match op {
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

fn valid_key(k: &str) -> Result<String, String> {
    if k.is_empty() || k.contains(char::is_whitespace) || k.contains(['(', ')', ',']) {
        return Err(format!("invalid label key \"{k}\""));
    }
    Ok(k.to_string())
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    term.find(op)
        .map(|i| (&term[..i], term[i + op.len()..].trim()))
}

fn parse_set(set: &str) -> Result<Vec<String>, String> {
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, found \"{set}\""))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value` terms.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(kind: &dyn Kind, s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported_fields(kind).contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, eq, want)| (field_value(obj, field) == *want) == *eq)
    }

    /// Whether the fields read through `field` (their string value as [`field_value`] gives
    /// it) match; None when `field` cannot tell one of the selected fields.
    pub fn matches_with<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> Option<bool> {
        let mut all = true;
        for (name, eq, want) in &self.0 {
            all &= (field(name)? == want.as_str()) == *eq;
        }
        Some(all)
    }
}

/// The field selectors `kind` supports: `metadata.name`, `metadata.namespace` and the kind's own.
pub(crate) fn supported_fields(kind: &dyn Kind) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    f.extend_from_slice(kind.field_selectors());
    f
}

/// The object path a field label reads in a stored object: core Events' `source` is
/// `source.component`.
pub(crate) fn value_path(field: &str) -> &str {
    match field {
        "source" => "source.component",
        other => other,
    }
}

/// The string value of a dotted field path ("" when absent; booleans and numbers printed).
pub(crate) fn field_value(obj: &Value, path: &str) -> String {
    if path == "source" {
        // events.k8s.io/v1 calls core/v1's `source` `deprecatedSource`.
        return match obj.get("deprecatedSource") {
            Some(_) => field_value(obj, "deprecatedSource.component"),
            None => field_value(obj, value_path(path)),
        };
    }
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => {
                return if path == "spec.unschedulable" || path == "spec.hostNetwork" {
                    "false".into()
                } else {
                    String::new()
                }
            }
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The string form of a `LabelSelector` object (`matchLabels` + `matchExpressions`), as in
/// `Scale.status.selector`.
pub fn label_selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (back)", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn rejects_malformed_label_selector() {
        assert_eq!(LabelSelector::parse("app in web").unwrap_err().code, 400);
    }

    #[test]
    fn field_selector_per_kind() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse(pods, "spec.nodeName=n1,status.phase!=Failed")
                .unwrap()
                .matches(&pod)
        );
        assert!(!FieldSelector::parse(pods, "metadata.name=b")
            .unwrap()
            .matches(&pod));
        let cms = crate::resources::find("", "v1", "configmaps").unwrap();
        assert_eq!(
            FieldSelector::parse(cms, "spec.nodeName=n1")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn selector_object_to_string() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(label_selector_string(&s), "app=web,x in (a,b)");
    }
}
