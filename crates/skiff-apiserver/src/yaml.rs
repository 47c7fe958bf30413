//! YAML request bodies (`application/yaml`, `application/apply-patch+yaml`) parsed under a
//! budget enforced *while* parsing, so hostile input costs work proportional to its size:
//! nesting depth, node count and alias expansion ("billion laughs") are capped before the
//! parser builds anything (the class of CVE-2019-11254). Real objects stay far below the
//! limits (a Deployment's deepest field nests about 12 levels).
//!
//! Translation only; the one place YAML is read.

use serde_json::Value;

use crate::error::ApiError;
use crate::http::MAX_BODY;

/// Deepest nesting of sequences and mappings accepted. The parser recurses once per level
/// and a debug build spends ~16 KiB of stack per level: 64 levels stay well inside a tokio
/// worker's 2 MiB stack (128 overflow it there).
pub const MAX_DEPTH: usize = 64;
/// Most YAML nodes (scalars, sequences, mappings) in one body: one per byte of the largest
/// body.
pub const MAX_NODES: usize = MAX_BODY;
/// Most events aliases may replay (and anchors record) in one body: aliases are rare in
/// Kubernetes manifests, and each replayed event is work the body did not pay for in size.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = 2 * MAX_NODES;
    budget.max_documents = 1;
    budget.max_recorded_anchor_events = MAX_ALIAS_EVENTS;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    // Scalars are typed as serde_yaml typed them (YAML 1.2 core schema): `yes`, `on` and
    // `0755` stay strings.
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options
}

/// Parses one YAML document into the JSON value it stands for; 400 when it is not YAML or
/// exceeds the budget.
pub fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_saphyr::from_slice_with_options(body, options())
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {}", first_line(&e))))
}

/// The first line of a parser error (the rest is a source snippet).
fn first_line(e: &serde_saphyr::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_parse_like_json() {
        let v = parse(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: \"1\"\n  yes: no\n  mode: 0755\n")
            .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                "data": {"k": "1", "yes": "no", "mode": "0755"}})
        );
        let v =
            parse(br#"{"apiVersion":"v1","spec":{"replicas":3,"paused":false,"x":null}}"#).unwrap();
        assert_eq!(
            v["spec"],
            json!({"replicas": 3, "paused": false, "x": null})
        );
    }

    /// The issue's repro: 100,000 open brackets took 37 s of CPU before the depth check.
    #[test]
    fn deep_nesting_is_refused_while_parsing() {
        for open in ["[", "{a: "] {
            let body = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {}",
                open.repeat(100_000)
            );
            let started = std::time::Instant::now();
            let err = parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, 400, "{}", err.message);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        let block: String = (0..200)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect();
        assert_eq!(parse(block.as_bytes()).unwrap_err().code, 400);
        let fine: String = format!("a: {}1{}", "[".repeat(60), "]".repeat(60));
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = parse(doc.as_bytes()).unwrap_err();
        assert_eq!(err.code, 400);
        eprintln!(
            "alias bomb refused after {:?}: {}",
            started.elapsed(),
            err.message
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A few aliases are fine.
        let ok = parse(b"base: &b {k: v}\ncopy: *b\n").unwrap();
        assert_eq!(ok["copy"], json!({"k": "v"}));
    }

    #[test]
    fn garbage_and_several_documents_are_bad_requests() {
        assert_eq!(parse(b"a: [1, 2").unwrap_err().code, 400);
        assert_eq!(parse(b"a: 1\n---\nb: 2\n").unwrap_err().code, 400);
        assert_eq!(parse(b"\xff\xfe").unwrap_err().code, 400);
    }
}
