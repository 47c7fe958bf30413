//! The OpenAPI documents against what the server serves, through the public router: every
//! verb discovery reports appears as a path and method in both the v2 and the v3 documents,
//! and every operation the documents publish is routed (never "the server could not find
//! the requested resource", never 405).

mod common;

use std::collections::BTreeSet;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};

/// (path, method) of every operation in a document's `paths`.
fn operations(paths: &Value) -> BTreeSet<(String, String)> {
    paths
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| *m != "parameters")
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect()
}

/// What discovery says is served, as (path, method).
async fn discovered(api: &Api) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for root in ["/api", "/apis"] {
        let (_, _, body) = api
            .send(
                "GET",
                root,
                "application/json",
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                vec![],
            )
            .await;
        let doc: Value = serde_json::from_slice(&body).unwrap();
        for group in doc["items"].as_array().unwrap() {
            let g = group["metadata"]["name"].as_str().unwrap_or("");
            for version in group["versions"].as_array().unwrap() {
                let v = version["version"].as_str().unwrap();
                let base = if g.is_empty() {
                    format!("/api/{v}")
                } else {
                    format!("/apis/{g}/{v}")
                };
                for r in version["resources"].as_array().unwrap() {
                    let plural = r["resource"].as_str().unwrap();
                    let ns = if r["scope"] == "Namespaced" {
                        "namespaces/{namespace}/"
                    } else {
                        ""
                    };
                    let collection = format!("{base}/{ns}{plural}");
                    let item = format!("{collection}/{{name}}");
                    let verbs: Vec<&str> = r["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    for verb in &verbs {
                        let (path, method) = match *verb {
                            "list" => (collection.clone(), "get"),
                            "create" => (collection.clone(), "post"),
                            "deletecollection" => (collection.clone(), "delete"),
                            "get" => (item.clone(), "get"),
                            "update" => (item.clone(), "put"),
                            "patch" => (item.clone(), "patch"),
                            "delete" => (item.clone(), "delete"),
                            "watch" => (format!("{base}/watch/{ns}{plural}/{{name}}"), "get"),
                            other => panic!("unknown verb {other}"),
                        };
                        out.insert((path, method.to_string()));
                    }
                    if verbs.contains(&"list") && !ns.is_empty() {
                        out.insert((format!("{base}/{plural}"), "get".into()));
                    }
                    for sub in r["subresources"].as_array().into_iter().flatten() {
                        let name = sub["subresource"].as_str().unwrap();
                        for verb in sub["verbs"].as_array().unwrap() {
                            let method = match verb.as_str().unwrap() {
                                "get" => "get",
                                "create" => "post",
                                "update" => "put",
                                "patch" => "patch",
                                other => panic!("unknown verb {other}"),
                            };
                            out.insert((format!("{item}/{name}"), method.into()));
                        }
                    }
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn every_discovered_verb_is_in_both_documents() {
    let api = api().await;
    let (s, v2) = api.get("/openapi/v2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v2["swagger"], "2.0");
    let v2_ops = operations(&v2["paths"]);
    let (s, index) = api.get("/openapi/v3").await;
    assert_eq!(s, StatusCode::OK);
    let mut v3_ops = BTreeSet::new();
    for entry in index["paths"].as_object().unwrap().values() {
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let (s, doc) = api.get(url).await;
        assert_eq!(s, StatusCode::OK, "{url}");
        v3_ops.extend(operations(&doc["paths"]));
    }
    let served = discovered(&api).await;
    assert!(served.len() > 150, "{} discovered operations", served.len());
    for op in &served {
        assert!(v2_ops.contains(op), "{op:?} missing from /openapi/v2");
        assert!(v3_ops.contains(op), "{op:?} missing from /openapi/v3");
    }
    assert_eq!(v2_ops, v3_ops, "both documents publish the same API");
}

#[tokio::test]
async fn every_published_operation_is_routed() {
    let api = api().await;
    let (_, v2) = api.get("/openapi/v2").await;
    for (path, method) in operations(&v2["paths"]) {
        let url = path
            .replace("{namespace}", "default")
            .replace("{name}", "no-such-object");
        let url = if path.contains("/watch/") {
            // A watch streams until its timeout: ask for none.
            format!("{url}?timeoutSeconds=0")
        } else {
            url
        };
        let body = match method.as_str() {
            "get" => vec![],
            "patch" => b"{}".to_vec(),
            _ => serde_json::to_vec(&json!({})).unwrap(),
        };
        let ct = if method == "patch" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let (s, _, bytes) = api
            .send(&method.to_uppercase(), &url, ct, "application/json", body)
            .await;
        let text = String::from_utf8_lossy(&bytes);
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}: {text}");
        assert!(
            !text.contains("the server could not find the requested resource"),
            "{method} {url} is not routed: {text}"
        );
    }
}

#[tokio::test]
async fn kubectl_gets_the_v2_document_as_protobuf() {
    let api = api().await;
    let (s, headers, body) = api
        .send(
            "GET",
            "/openapi/v2?timeout=32s",
            "application/json",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    // Field 1 (swagger, a string) comes first: 0x0a, length 3, "2.0".
    assert_eq!(&body[..5], b"\x0a\x032.0");
}
