//! A pod's `/etc/hosts` and `/etc/resolv.conf`, worded as kubelet writes them.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

use crate::sandbox::{pod_hostname, PodNetworkConfig};

/// kubelet's managed hosts file: localhost entries, the pod's own name on its address (with
/// its subdomain's FQDN when it has one), then `hostAliases`. Host-network pods get the
/// host's file.
pub fn hosts(pod: &Pod, ip: Option<Ipv4Addr>, host_hosts: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = if spec.host_network.unwrap_or(false) {
        format!("# Kubernetes-managed hosts file (host network).\n{host_hosts}")
    } else {
        let mut s = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        if let Some(ip) = ip {
            let hostname = pod_hostname(pod);
            match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                    s.push_str(&format!(
                        "{ip}\t{hostname}.{sub}.{ns}.svc.cluster.local\t{hostname}\n"
                    ));
                }
                None => s.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        s
    };
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

/// kubelet's resolv.conf for the pod's `dnsPolicy`: `ClusterFirst` (the default) points at the
/// cluster DNS with the namespace's search path and `ndots:5`; `Default`, and `ClusterFirst`
/// on the host's network, use the host's; `None` only `dnsConfig`. `dnsConfig` is merged in.
pub fn resolv_conf(pod: &Pod, cfg: &PodNetworkConfig, host: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    let (host_servers, host_searches, host_options) = parse_resolv(host);
    let cluster =
        policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_network);
    if cluster {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let d = &cfg.cluster_domain;
        servers.push(cfg.cluster_dns.to_string());
        searches.extend([format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()]);
        searches.extend(host_searches);
        options.push("ndots:5".to_string());
    } else if policy != "None" {
        servers = host_servers;
        searches = host_searches;
        options = host_options;
    }
    if let Some(dc) = spec.dns_config {
        for s in dc.nameservers.unwrap_or_default() {
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
        for s in dc.searches.unwrap_or_default() {
            if !searches.contains(&s) {
                searches.push(s);
            }
        }
        for o in dc.options.unwrap_or_default() {
            let text = match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            };
            let key = text.split(':').next().unwrap_or("").to_string();
            options.retain(|x: &String| x.split(':').next() != Some(key.as_str()));
            options.push(text);
        }
    }
    // glibc reads at most 3 name servers and 6 search domains (kubelet trims likewise).
    servers.truncate(3);
    searches.truncate(6);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn parse_resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => searches = words.map(str::to_string).collect(),
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn cfg() -> PodNetworkConfig {
        PodNetworkConfig {
            bridge: "skiffpods0".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            cluster_dns: "10.43.0.10".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: "/etc/resolv.conf".into(),
        }
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns() {
        let p = pod(json!({"containers": []}));
        let text = resolv_conf(&p, &cfg(), "nameserver 1.1.1.1\nsearch corp.example\n");
        assert_eq!(
            text,
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.43.0.10\noptions ndots:5\n"
        );
        let host = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(
            resolv_conf(&host, &cfg(), "nameserver 1.1.1.1\n"),
            "nameserver 1.1.1.1\n"
        );
        let custom = pod(json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["9.9.9.9"], "options": [{"name": "ndots", "value": "2"}]}}));
        assert_eq!(
            resolv_conf(&custom, &cfg(), "nameserver 1.1.1.1\n"),
            "nameserver 9.9.9.9\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_name_the_pod() {
        let p = pod(json!({"containers": [], "subdomain": "db",
            "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["a", "b"]}]}));
        let text = hosts(&p, Some("10.42.0.7".parse().unwrap()), "");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.42.0.7\tweb-0.db.shop.svc.cluster.local\tweb-0\n"));
        assert!(text.ends_with("# Entries added by HostAliases.\n10.0.0.9\ta\tb\n"));
    }
}
