//! The operations the API serves for each kind, as kube-apiserver publishes them: collection
//! (list, create, deletecollection), item (read, replace, patch, delete), the watch paths,
//! the subresources, with their parameters, request bodies and responses. One model, from
//! which both the OpenAPI v2 and v3 documents are written.

use crate::registry::{Backend, Kind};
use crate::resources::Sub;
use crate::reviews::Review;

/// What a request body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The operation's object (the kind, or `Scale` for `/scale`).
    Object,
    /// A patch (`io.k8s.apimachinery.pkg.apis.meta.v1.Patch`).
    Patch,
    /// `DeleteOptions`.
    DeleteOptions,
}

/// What a response holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Object,
    List,
    Status,
    WatchEvent,
}

/// One operation on one path.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `get`, `put`, `post`, `patch` or `delete`.
    pub method: &'static str,
    pub id: String,
    /// `x-kubernetes-action`.
    pub action: &'static str,
    pub description: String,
    /// (group, version, kind) of `x-kubernetes-group-version-kind`.
    pub gvk: (&'static str, &'static str, &'static str),
    pub query: &'static [&'static str],
    pub body: Option<Body>,
    pub reply: Reply,
    /// Status codes answered with the reply (401 is added to every operation).
    pub codes: &'static [u16],
    pub consumes: &'static [&'static str],
}

/// One path and its operations.
#[derive(Debug, Clone)]
pub struct PathItem {
    pub path: String,
    /// Path parameters: `name` and/or `namespace`.
    pub params: Vec<&'static str>,
    pub operations: Vec<Operation>,
}

const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const JSON: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const PATCHES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The type and description of a query parameter.
pub fn query_param(name: &str) -> (&'static str, &'static str) {
    match name {
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. Valid value: All."),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests: it re-acquires conflicting fields owned by other people."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call."),
        "orphanDependents" => ("boolean", "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned."),
        "pretty" => ("string", "If 'true', then the output is pretty printed."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events for the current state."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
        _ => ("string", ""),
    }
}

/// `AppsV1`, `CoreV1`, `EventsV1`, `MetricsV1beta1`: the infix of operation ids.
fn group_id(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    format!("{}{}", cap(g), cap(version))
}

/// The URL prefix of a group version: `/api/v1` or `/apis/apps/v1`.
pub fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Every path and operation served for `kind`.
pub fn paths(kind: &dyn Kind) -> Vec<PathItem> {
    let r = kind.info();
    let gvk = (r.group, r.version, r.kind);
    let gid = group_id(r.group, r.version);
    let base = prefix(r.group, r.version);
    let (ns_path, ns_id, ns_params) = if r.namespaced {
        ("namespaces/{namespace}/", "Namespaced", vec!["namespace"])
    } else {
        ("", "", vec![])
    };
    let collection = format!("{base}/{ns_path}{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let read_only = kind.backend() != Backend::Store;
    let k = r.kind;
    let op = |method, id: String, action, description: String| Operation {
        method,
        id,
        action,
        description,
        gvk,
        query: &[],
        body: None,
        reply: Reply::Object,
        codes: &[200],
        consumes: &[],
    };
    let with_name = |mut p: Vec<&'static str>| {
        p.insert(0, "name");
        p
    };
    let mut out = Vec::new();

    let mut coll_ops = vec![Operation {
        query: LIST,
        reply: Reply::List,
        ..op(
            "get",
            format!("list{gid}{ns_id}{k}"),
            "list",
            format!("list or watch objects of kind {k}"),
        )
    }];
    let mut item_ops = vec![op(
        "get",
        format!("read{gid}{ns_id}{k}"),
        "get",
        format!("read the specified {k}"),
    )];
    if !read_only {
        coll_ops.push(Operation {
            query: WRITE,
            body: Some(Body::Object),
            codes: &[200, 201, 202],
            consumes: JSON,
            ..op(
                "post",
                format!("create{gid}{ns_id}{k}"),
                "post",
                format!("create a {k}"),
            )
        });
        coll_ops.push(Operation {
            query: DELETE_COLLECTION,
            body: Some(Body::DeleteOptions),
            reply: Reply::Status,
            consumes: JSON,
            ..op(
                "delete",
                format!("delete{gid}Collection{ns_id}{k}"),
                "deletecollection",
                format!("delete collection of {k}"),
            )
        });
        item_ops.extend(writes(&op, &gid, ns_id, k, "", None));
        item_ops.push(Operation {
            query: DELETE,
            body: Some(Body::DeleteOptions),
            reply: Reply::Status,
            codes: &[200, 202],
            consumes: JSON,
            ..op(
                "delete",
                format!("delete{gid}{ns_id}{k}"),
                "delete",
                format!("delete a {k}"),
            )
        });
    }
    out.push(PathItem {
        path: collection.clone(),
        params: ns_params.clone(),
        operations: coll_ops,
    });
    out.push(PathItem {
        path: item.clone(),
        params: with_name(ns_params.clone()),
        operations: item_ops,
    });
    if r.namespaced {
        out.push(PathItem {
            path: format!("{base}/{}", r.plural),
            params: vec![],
            operations: vec![Operation {
                query: LIST,
                reply: Reply::List,
                ..op(
                    "get",
                    format!("list{gid}{k}ForAllNamespaces"),
                    "list",
                    format!("list or watch objects of kind {k}"),
                )
            }],
        });
    }
    if !read_only {
        let watch =
            |path: String, params: Vec<&'static str>, id: String, action, what: &str| PathItem {
                path,
                params,
                operations: vec![Operation {
                    query: LIST,
                    reply: Reply::WatchEvent,
                    ..op(
                        "get",
                        id,
                        action,
                        format!("watch changes to {what} of kind {k}"),
                    )
                }],
            };
        out.push(watch(
            format!("{base}/watch/{ns_path}{}", r.plural),
            ns_params.clone(),
            format!("watch{gid}{ns_id}{k}List"),
            "watchlist",
            "a list",
        ));
        out.push(watch(
            format!("{base}/watch/{ns_path}{}/{{name}}", r.plural),
            with_name(ns_params.clone()),
            format!("watch{gid}{ns_id}{k}"),
            "watch",
            "an object",
        ));
        if r.namespaced {
            out.push(watch(
                format!("{base}/watch/{}", r.plural),
                vec![],
                format!("watch{gid}{k}ListForAllNamespaces"),
                "watchlist",
                "a list",
            ));
        }
    }
    for &sub in r.subresources {
        let suffix = match sub {
            Sub::Status => "Status",
            Sub::Scale => "Scale",
            Sub::Finalize => "Finalize",
            Sub::Approval => "Approval",
            Sub::Binding => "Binding",
            Sub::Token => "Token",
            Sub::Eviction => "Eviction",
        };
        let sub_gvk = match sub {
            Sub::Scale => Some(("autoscaling", "v1", "Scale")),
            Sub::Binding => Some(("", "v1", "Binding")),
            Sub::Token => Some(("authentication.k8s.io", "v1", "TokenRequest")),
            Sub::Eviction => Some(("policy", "v1", "Eviction")),
            _ => None,
        };
        let mut ops = Vec::new();
        if sub.verbs().contains(&"get") {
            ops.push(Operation {
                gvk: sub_gvk.unwrap_or(gvk),
                ..op(
                    "get",
                    format!("read{gid}{ns_id}{k}{suffix}"),
                    "get",
                    format!("read {} of the specified {k}", sub.name()),
                )
            });
        }
        if sub.verbs().contains(&"create") {
            ops.push(Operation {
                query: WRITE,
                body: Some(Body::Object),
                codes: &[200, 201, 202],
                consumes: JSON,
                gvk: sub_gvk.unwrap_or(gvk),
                ..op(
                    "post",
                    format!("create{gid}{ns_id}{k}{suffix}"),
                    "post",
                    format!("create {} of a {k}", sub.name()),
                )
            });
        }
        ops.extend(
            writes(&op, &gid, ns_id, k, suffix, sub_gvk)
                .into_iter()
                .filter(|o| {
                    sub.verbs().contains(&if o.method == "put" {
                        "update"
                    } else {
                        o.method
                    })
                }),
        );
        out.push(PathItem {
            path: format!("{item}/{}", sub.name()),
            params: with_name(ns_params.clone()),
            operations: ops,
        });
    }
    out
}

/// The one operation of a review: create (`POST` to its collection), as kube-apiserver
/// publishes its virtual resources.
pub fn review_paths(review: Review) -> Vec<PathItem> {
    let r = review.info();
    let gid = group_id(r.group, r.version);
    let (ns_path, ns_id, params) = if r.namespaced {
        ("namespaces/{namespace}/", "Namespaced", vec!["namespace"])
    } else {
        ("", "", vec![])
    };
    let k = r.kind;
    vec![PathItem {
        path: format!("{}/{ns_path}{}", prefix(r.group, r.version), r.plural),
        params,
        operations: vec![Operation {
            method: "post",
            id: format!("create{gid}{ns_id}{k}"),
            action: "post",
            description: format!("create a {k}"),
            gvk: (r.group, r.version, k),
            query: WRITE,
            body: Some(Body::Object),
            reply: Reply::Object,
            codes: &[200, 201, 202],
            consumes: JSON,
        }],
    }]
}

/// PUT and PATCH of an item (or of its subresource `suffix`).
fn writes(
    op: &dyn Fn(&'static str, String, &'static str, String) -> Operation,
    gid: &str,
    ns_id: &str,
    k: &'static str,
    suffix: &str,
    gvk: Option<(&'static str, &'static str, &'static str)>,
) -> Vec<Operation> {
    let what = if suffix.is_empty() {
        format!("the specified {k}")
    } else {
        format!("{} of the specified {k}", suffix.to_ascii_lowercase())
    };
    let mut put = Operation {
        query: WRITE,
        body: Some(Body::Object),
        codes: &[200, 201],
        consumes: JSON,
        ..op(
            "put",
            format!("replace{gid}{ns_id}{k}{suffix}"),
            "put",
            format!("replace {what}"),
        )
    };
    let mut patch = Operation {
        query: PATCH,
        body: Some(Body::Patch),
        codes: &[200, 201],
        consumes: PATCHES,
        ..op(
            "patch",
            format!("patch{gid}{ns_id}{k}{suffix}"),
            "patch",
            format!("partially update {what}"),
        )
    };
    if let Some(g) = gvk {
        put.gvk = g;
        patch.gvk = g;
    }
    vec![put, patch]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn deployments_have_kubernetes_operation_ids() {
        let items = paths(find("apps", "v1", "deployments").unwrap());
        let ids: Vec<(String, &str)> = items
            .iter()
            .flat_map(|p| {
                p.operations
                    .iter()
                    .map(move |o| (p.path.clone(), o.id.as_str()))
            })
            .collect();
        for (path, id) in [
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments",
                "listAppsV1NamespacedDeployment",
            ),
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments",
                "createAppsV1NamespacedDeployment",
            ),
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments",
                "deleteAppsV1CollectionNamespacedDeployment",
            ),
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
                "patchAppsV1NamespacedDeployment",
            ),
            (
                "/apis/apps/v1/deployments",
                "listAppsV1DeploymentForAllNamespaces",
            ),
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                "replaceAppsV1NamespacedDeploymentScale",
            ),
            (
                "/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}",
                "watchAppsV1NamespacedDeployment",
            ),
        ] {
            assert!(
                ids.contains(&(path.to_string(), id)),
                "missing {id} on {path}"
            );
        }
    }

    #[test]
    fn read_only_kinds_have_get_and_list_only() {
        let items = paths(find("metrics.k8s.io", "v1beta1", "pods").unwrap());
        let methods: Vec<(&str, &str)> = items
            .iter()
            .flat_map(|p| {
                p.operations
                    .iter()
                    .map(move |o| (p.path.as_str(), o.action))
            })
            .collect();
        assert_eq!(
            methods,
            [
                (
                    "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
                    "list"
                ),
                (
                    "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
                    "get"
                ),
                ("/apis/metrics.k8s.io/v1beta1/pods", "list"),
            ]
        );
    }

    #[test]
    fn reviews_have_kubernetes_operation_ids() {
        let ids: Vec<(String, String)> = Review::ALL
            .into_iter()
            .flat_map(review_paths)
            .flat_map(|p| {
                let path = p.path.clone();
                p.operations
                    .into_iter()
                    .map(move |o| (path.clone(), format!("{} {}", o.method, o.id)))
            })
            .collect();
        for (path, op) in [
            (
                "/apis/authentication.k8s.io/v1/tokenreviews",
                "post createAuthenticationV1TokenReview",
            ),
            (
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "post createAuthenticationV1SelfSubjectReview",
            ),
            (
                "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews",
                "post createAuthorizationV1NamespacedLocalSubjectAccessReview",
            ),
            (
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                "post createAuthorizationV1SubjectAccessReview",
            ),
        ] {
            assert!(
                ids.contains(&(path.to_string(), op.to_string())),
                "missing {op} on {path}: {ids:?}"
            );
        }
        assert_eq!(ids.len(), 6, "one create each: {ids:?}");
    }
}
