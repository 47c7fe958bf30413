//! The part of Docker's image config that OCI's `Config` does not model: `Healthcheck`,
//! `Shell`, `OnBuild`, `ArgsEscaped` (typed, the engine and the builder act on them) and
//! every other key Docker writes there (`Hostname`, `Domainname`, `AttachStdin`, …, kept as
//! they came). It is read from the same config blob as the OCI config and written back into
//! the `config` object of configs this crate creates (commit, and so every build step), so
//! the fields survive build, store, save/load, push/pull and commit. See ADR 0023.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Keys of the `config` object that OCI's `Config` owns (oci-spec reads and writes them).
const OCI_KEYS: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
];

/// Docker's `Healthcheck` (moby's `HealthConfig`): `test` is `["NONE"]`, `["CMD", …]`,
/// `["CMD-SHELL", "…"]` or empty (inherit); durations in nanoseconds, 0 = inherit/default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Docker's image config fields beyond OCI's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerConfig {
    pub healthcheck: Option<HealthConfig>,
    /// `SHELL`: the shell of shell-form `RUN`/`CMD`/`ENTRYPOINT` and `CMD-SHELL` checks.
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers, run when the image is used in `FROM` (and not inherited further).
    pub on_build: Option<Vec<String>>,
    pub args_escaped: Option<bool>,
    /// Any other key neither OCI nor the fields above model, as it was.
    pub other: BTreeMap<String, Value>,
}

impl DockerConfig {
    /// The extra fields of a config blob. A field of the wrong type is kept untyped in
    /// `other` (it is the blob's, not ours to reject); a blob that is not JSON has none.
    pub fn from_blob(bytes: &[u8]) -> DockerConfig {
        #[derive(Deserialize)]
        struct Blob {
            #[serde(default)]
            config: Option<Map<String, Value>>,
        }
        let Ok(Blob {
            config: Some(config),
        }) = serde_json::from_slice::<Blob>(bytes)
        else {
            return DockerConfig::default();
        };
        Self::from_object(config)
    }

    fn from_object(mut config: Map<String, Value>) -> DockerConfig {
        for k in OCI_KEYS {
            config.remove(*k);
        }
        fn take<T: serde::de::DeserializeOwned>(
            config: &mut Map<String, Value>,
            key: &str,
        ) -> Option<T> {
            let v = config.get(key)?;
            if v.is_null() {
                config.remove(key);
                return None;
            }
            let typed = serde_json::from_value(v.clone()).ok()?;
            config.remove(key);
            Some(typed)
        }
        DockerConfig {
            healthcheck: take(&mut config, "Healthcheck"),
            shell: take(&mut config, "Shell"),
            on_build: take(&mut config, "OnBuild"),
            args_escaped: take(&mut config, "ArgsEscaped"),
            other: config.into_iter().collect(),
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.healthcheck.is_none()
            && self.shell.is_none()
            && self.on_build.is_none()
            && self.args_escaped.is_none()
            && self.other.is_empty()
    }

    /// Writes the fields into the `config` object of a serialized image config (creating
    /// it when needed); keys OCI owns are never overwritten.
    pub(crate) fn write_into(&self, image_config: &mut Value) {
        if self.is_empty() {
            return;
        }
        let Some(root) = image_config.as_object_mut() else {
            return;
        };
        let config = root
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()));
        if !config.is_object() {
            *config = Value::Object(Map::new());
        }
        let Some(config) = config.as_object_mut() else {
            return;
        };
        let mut put = |k: &str, v: Value| {
            if !OCI_KEYS.contains(&k) {
                config.insert(k.to_string(), v);
            }
        };
        for (k, v) in &self.other {
            put(k, v.clone());
        }
        if let Some(h) = &self.healthcheck {
            put("Healthcheck", serde_json::to_value(h).unwrap_or_default());
        }
        if let Some(s) = &self.shell {
            put("Shell", Value::from(s.clone()));
        }
        if let Some(o) = &self.on_build {
            put("OnBuild", Value::from(o.clone()));
        }
        if let Some(a) = self.args_escaped {
            put("ArgsEscaped", Value::from(a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"architecture":"amd64","os":"linux",
        "config":{"Hostname":"","Domainname":"example","User":"","AttachStdin":false,
        "Env":["PATH=/bin"],"Cmd":["sh"],"ArgsEscaped":true,
        "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":5000000000,"Retries":2},
        "OnBuild":["RUN echo hi"],"Shell":["/bin/sh","-ec"],"StopTimeout":null},
        "rootfs":{"type":"layers","diff_ids":[]}}"#;

    #[test]
    fn reads_docker_fields_and_keeps_the_rest() {
        let d = DockerConfig::from_blob(DOCKER.as_bytes());
        assert_eq!(
            d.healthcheck,
            Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: 5_000_000_000,
                retries: 2,
                ..Default::default()
            })
        );
        assert_eq!(
            d.shell.as_deref(),
            Some(&["/bin/sh".into(), "-ec".into()][..])
        );
        assert_eq!(
            d.on_build.as_deref(),
            Some(&["RUN echo hi".to_string()][..])
        );
        assert_eq!(d.args_escaped, Some(true));
        assert_eq!(d.other.get("Domainname"), Some(&Value::from("example")));
        assert!(!d.other.contains_key("Env"), "OCI keys are OCI's");
    }

    #[test]
    fn round_trips_through_an_oci_config() {
        let d = DockerConfig::from_blob(DOCKER.as_bytes());
        let oci = oci_spec::image::ImageConfiguration::from_reader(DOCKER.as_bytes()).unwrap();
        let mut v = serde_json::to_value(&oci).unwrap();
        d.write_into(&mut v);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert_eq!(DockerConfig::from_blob(&bytes), d);
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["sh"]));
    }

    #[test]
    fn a_field_of_the_wrong_type_stays_untyped() {
        let d = DockerConfig::from_blob(br#"{"config":{"Shell":"sh","OnBuild":null}}"#);
        assert_eq!(d.shell, None);
        assert_eq!(d.on_build, None);
        assert_eq!(d.other.get("Shell"), Some(&Value::from("sh")));
        assert_eq!(
            DockerConfig::from_blob(b"not json"),
            DockerConfig::default()
        );
    }
}
