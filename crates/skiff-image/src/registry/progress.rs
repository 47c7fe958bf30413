//! Progress of pulls and pushes, shaped as Docker's JSON progress messages so the API edge
//! can stream them unchanged and the docker CLI draws its bars:
//! `{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[=> ]…","id":"0123456789ab"}`.
//!
//! The statuses are moby's: pull — `Pulling from REPO` (id = tag), `Pulling fs layer`,
//! `Waiting`, `Downloading`, `Verifying Checksum`, `Download complete`, `Extracting`,
//! `Pull complete`, `Already exists`, `Digest: …`, `Status: …`; push — `The push refers to
//! repository [...]`, `Preparing`, `Waiting`, `Pushing`, `Pushed`, `Layer already exists`,
//! `Mounted from REPO`, `TAG: digest: … size: N` plus an `aux` record.

use serde::Serialize;

/// Byte counts of a `Downloading`/`Extracting`/`Pushing` message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One progress message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub status: String,
    /// `{}` on per-layer statuses, byte counts while transferring, absent on summaries.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub detail: Option<ProgressDetail>,
    /// The text bar Docker renders for clients that do not draw their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// A layer's short digest, or the tag on `Pulling from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The push result (`{"Tag":…,"Digest":…,"Size":…}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl Progress {
    /// A line without id (`Digest: sha256:…`).
    pub fn status(status: impl Into<String>) -> Progress {
        Progress {
            status: status.into(),
            detail: None,
            progress: None,
            id: None,
            aux: None,
        }
    }

    /// A line about one layer (`Pull complete`).
    pub fn layer(id: &str, status: impl Into<String>) -> Progress {
        Progress {
            id: Some(id.to_string()),
            detail: Some(ProgressDetail::default()),
            ..Progress::status(status)
        }
    }

    /// A transfer line (`Downloading` 1.2MB/3.4MB).
    pub fn bytes(id: &str, status: &str, current: u64, total: u64) -> Progress {
        Progress {
            detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            progress: Some(bar(current, total)),
            ..Progress::layer(id, status)
        }
    }

    /// The JSON line the Engine API streams.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("progress serialises")
    }
}

/// Receives progress; called from the pulling or pushing task, so keep it quick.
pub type ProgressSink<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// The id Docker shows for a layer: the first 12 hex digits of its digest.
pub(crate) fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// `[=====>      ]  1.23MB/4.56MB`, 50 columns as moby draws it.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled));
    if filled < WIDTH as usize {
        s.push('>');
        s.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    s.push_str(&format!("]  {}/{}", human(current), human(total)));
    s
}

/// Decimal sizes with three significant digits, as Docker's `HumanSize` (`1.23MB`).
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_dockers_json_shape() {
        let p = Progress::bytes("0123456789ab", "Downloading", 500, 1000);
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["status"], "Downloading");
        assert_eq!(v["id"], "0123456789ab");
        assert_eq!(v["progressDetail"]["current"], 500);
        assert_eq!(v["progressDetail"]["total"], 1000);
        assert!(v["progress"]
            .as_str()
            .unwrap()
            .starts_with("[=========================>"));
        assert_eq!(
            Progress::layer("0123456789ab", "Pull complete").to_json(),
            r#"{"status":"Pull complete","progressDetail":{},"id":"0123456789ab"}"#
        );
        assert_eq!(
            Progress::status("Digest: sha256:00").to_json(),
            r#"{"status":"Digest: sha256:00"}"#
        );
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1234), "1.23kB");
        assert_eq!(human(2_500_000), "2.5MB");
        assert_eq!(human(123_456_789), "123MB");
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
