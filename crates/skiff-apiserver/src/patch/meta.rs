//! Patch and apply metadata per field: what Kubernetes declares with the Go struct tags
//! `patchStrategy:"merge"`/`patchMergeKey` (strategic merge patch) and the `+listType`/
//! `+listMapKey`/`+structType` markers (server-side apply). k8s-openapi's schemas do not carry
//! these extensions, so they are listed here, keyed by schema definition and field name, for
//! the kinds the API serves. A list that is not listed is atomic (replaced whole), as in
//! Kubernetes. `retainKeys` needs no entry: the server acts on the `$retainKeys` directive
//! that clients put in the patch.

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMeta {
    /// Strategic merge patch: `patchMergeKey` (merge list of objects by this key), or `None`
    /// for a merged set of primitives.
    pub merge_key: Option<&'static str>,
    /// Server-side apply: `+listType=map` keys, empty for `set` or `atomic`.
    pub map_keys: &'static [&'static str],
    /// Server-side apply: `+listType=set`.
    pub set: bool,
}

const fn map(key: &'static str, keys: &'static [&'static str]) -> ListMeta {
    ListMeta {
        merge_key: Some(key),
        map_keys: keys,
        set: false,
    }
}

const SET: ListMeta = ListMeta {
    merge_key: None,
    map_keys: &[],
    set: true,
};

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];
const PORT: &[&str] = &["containerPort", "protocol"];

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";
const AUTOSCALING: &str = "io.k8s.api.autoscaling.v2.";
const BATCH: &str = "io.k8s.api.batch.v1.";
const POLICY: &str = "io.k8s.api.policy.v1.";
const CERTIFICATES: &str = "io.k8s.api.certificates.v1.";

/// Merged by key for strategic merge patch, atomic for server-side apply.
const fn merge_atomic(key: &'static str) -> ListMeta {
    ListMeta {
        merge_key: Some(key),
        map_keys: &[],
        set: false,
    }
}

/// A map list for server-side apply that strategic merge patch replaces whole.
const fn map_only(keys: &'static [&'static str]) -> ListMeta {
    ListMeta {
        merge_key: None,
        map_keys: keys,
        set: false,
    }
}

/// (definition package, definition, field, metadata).
#[rustfmt::skip]
static LISTS: &[(&str, &str, &str, ListMeta)] = &[
    (META, "ObjectMeta", "finalizers", SET),
    (META, "ObjectMeta", "ownerReferences", map("uid", &["uid"])),
    (CORE, "PodSpec", "containers", map("name", NAME)),
    (CORE, "PodSpec", "initContainers", map("name", NAME)),
    (CORE, "PodSpec", "ephemeralContainers", map("name", NAME)),
    (CORE, "PodSpec", "imagePullSecrets", map("name", NAME)),
    (CORE, "PodSpec", "schedulingGates", map("name", NAME)),
    (CORE, "PodSpec", "hostAliases", map("ip", IP)),
    (CORE, "PodSpec", "topologySpreadConstraints", map("topologyKey", &["topologyKey", "whenUnsatisfiable"])),
    (CORE, "PodSpec", "volumes", map("name", NAME)),
    (CORE, "PodSpec", "resourceClaims", map("name", NAME)),
    (CORE, "Container", "ports", map("containerPort", PORT)),
    (CORE, "Container", "env", map("name", NAME)),
    (CORE, "Container", "volumeMounts", map("mountPath", &["mountPath"])),
    (CORE, "Container", "volumeDevices", map("devicePath", &["devicePath"])),
    (CORE, "EphemeralContainer", "ports", map("containerPort", PORT)),
    (CORE, "EphemeralContainer", "env", map("name", NAME)),
    (CORE, "EphemeralContainer", "volumeMounts", map("mountPath", &["mountPath"])),
    (CORE, "EphemeralContainer", "volumeDevices", map("devicePath", &["devicePath"])),
    (CORE, "PodStatus", "conditions", map("type", TYPE)),
    (CORE, "PodStatus", "podIPs", map("ip", IP)),
    (CORE, "PodStatus", "hostIPs", map("ip", IP)),
    (CORE, "ServiceSpec", "ports", map("port", &["port", "protocol"])),
    (CORE, "ServiceStatus", "conditions", map("type", TYPE)),
    (CORE, "NodeSpec", "podCIDRs", SET),
    (CORE, "NodeStatus", "addresses", map("type", TYPE)),
    (CORE, "NodeStatus", "conditions", map("type", TYPE)),
    (CORE, "NamespaceStatus", "conditions", map("type", TYPE)),
    (CORE, "ServiceAccount", "secrets", map("name", NAME)),
    (APPS, "DeploymentStatus", "conditions", map("type", TYPE)),
    (APPS, "ReplicaSetStatus", "conditions", map("type", TYPE)),
    (APPS, "StatefulSetStatus", "conditions", map("type", TYPE)),
    (APPS, "DaemonSetStatus", "conditions", map("type", TYPE)),
    (AUTOSCALING, "HorizontalPodAutoscalerStatus", "conditions", map("type", TYPE)),
    (CORE, "ReplicationControllerStatus", "conditions", map("type", TYPE)),
    (CORE, "PersistentVolumeClaimStatus", "conditions", map("type", TYPE)),
    (BATCH, "JobStatus", "conditions", merge_atomic("type")),
    (POLICY, "PodDisruptionBudgetStatus", "conditions", map("type", TYPE)),
    (CERTIFICATES, "CertificateSigningRequestStatus", "conditions", map_only(TYPE)),
];

/// Structs that server-side apply treats as one atomic value (`+structType=atomic`).
static ATOMIC_STRUCTS: &[&str] = &["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"];

fn matches(def: &str, prefix: &str, name: &str) -> bool {
    def.strip_prefix(prefix) == Some(name)
}

/// Defaults of list-map key fields, used when an item leaves its key field out (a container
/// port without `protocol` is keyed as TCP, as the schema default says).
pub fn key_default(field: &str) -> Option<&'static str> {
    (field == "protocol").then_some("TCP")
}

/// Metadata of list field `field` of definition `def`; None means atomic.
pub fn list(def: Option<&str>, field: &str) -> Option<ListMeta> {
    let def = def?;
    LISTS
        .iter()
        .find(|(p, n, f, _)| *f == field && matches(def, p, n))
        .map(|(_, _, _, m)| *m)
}

/// Every (definition, list field, metadata) entry, for publishing as the OpenAPI
/// extensions Kubernetes' schemas carry (`x-kubernetes-patch-merge-key`, …).
pub fn lists() -> impl Iterator<Item = (String, &'static str, ListMeta)> {
    LISTS.iter().map(|(p, n, f, m)| (format!("{p}{n}"), *f, *m))
}

/// The definitions owned as a whole (`x-kubernetes-map-type: atomic`).
pub fn atomic_structs() -> &'static [&'static str] {
    ATOMIC_STRUCTS
}

/// True when server-side apply owns a value of definition `def` as a whole.
pub fn atomic_struct(def: Option<&str>) -> bool {
    def.is_some_and(|d| ATOMIC_STRUCTS.contains(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::schema::{Node, Shape};

    /// Every definition reachable from the served kinds.
    fn reachable() -> std::collections::HashMap<&'static str, Node> {
        let mut seen = std::collections::HashMap::new();
        let mut stack: Vec<Node> = crate::resources::all()
            .filter_map(|k| Node::root(k.info()))
            .collect();
        while let Some(n) = stack.pop() {
            let Some(def) = n.def().filter(|_| n.shape() == Shape::Struct) else {
                continue;
            };
            if seen.insert(def, n).is_some() {
                continue;
            }
            for f in n.field_names() {
                let c = n.field(f).unwrap();
                stack.extend([Some(c), c.items(), c.values()].into_iter().flatten());
            }
        }
        seen
    }

    /// Every entry names a list field that exists in the served schemas, so a typo cannot
    /// silently turn a merged list into an atomic one.
    #[test]
    fn every_entry_names_a_real_field() {
        let defs = reachable();
        for (p, n, f, _) in LISTS {
            let def = format!("{p}{n}");
            let node = defs
                .get(def.as_str())
                .unwrap_or_else(|| panic!("{def} unreachable"));
            assert_eq!(
                node.field(f).map(|n| n.shape()),
                Some(Shape::List),
                "{def}.{f}"
            );
        }
        for d in ATOMIC_STRUCTS {
            assert!(defs.contains_key(d), "{d}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(
            list(Some("io.k8s.api.core.v1.PodSpec"), "containers")
                .unwrap()
                .merge_key,
            Some("name")
        );
        assert_eq!(
            list(Some("io.k8s.api.core.v1.PodSpec"), "tolerations"),
            None
        );
        assert!(
            list(
                Some("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
                "finalizers"
            )
            .unwrap()
            .set
        );
        assert!(atomic_struct(Some(
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
        )));
    }
}
