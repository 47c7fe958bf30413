//! Every admission point of [`Admission`] runs where its documentation says, for a kind
//! that records them (a ConfigMap look-alike).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use super::create_object;
use super::delete::{delete_object, Options};
use super::update::{write_update, UpdateKind};
use crate::error::ApiError;
use crate::registry::{Admission, Obj, Strategy};
use crate::resources::Entry;
use crate::router::ApiState;
use crate::validation::Errs;

static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

struct Recorded;

impl Strategy for Recorded {
    type Object = ConfigMap;
    type Protobuf = pb::ConfigMap;
    const RESOURCE: Entry = Entry::DEFAULT;

    fn validate(&self, new: Obj<'_, ConfigMap>, _old: Option<Obj<'_, ConfigMap>>, errs: &mut Errs) {
        if new.json["data"]["bad"].is_string() {
            errs.invalid("data[bad]", "\"x\"".into(), "refused");
        }
    }

    fn admit<'a>(
        &'a self,
        _state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        let name = match op {
            Admission::Create { .. } => "create",
            Admission::CreateAborted { .. } => "create-aborted",
            Admission::Created { .. } => "created",
            Admission::Update { .. } => "update",
            Admission::Updated { .. } => "updated",
            Admission::UpdateAborted { .. } => "update-aborted",
            Admission::Delete { .. } => "delete",
            Admission::Deleted { .. } => "deleted",
        };
        SEEN.lock().unwrap().push(name);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn seen() -> Vec<&'static str> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

#[tokio::test]
async fn admission_runs_at_each_point_of_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
    let encryptor = Arc::new(crate::encryption::Encryptor::load_or_create(dir.path()).unwrap());
    let state = ApiState::new(store, Default::default(), encryptor);
    state.bootstrap().await.unwrap();
    let obj = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}, "data": data});

    seen();
    let bad = create_object(&state, &Recorded, obj(json!({"bad": "x"})), None, false).await;
    assert_eq!(bad.unwrap_err().code, 422);
    assert_eq!(seen(), ["create", "create-aborted"]);
    let dry = create_object(&state, &Recorded, obj(json!({})), None, true).await;
    assert!(dry.is_ok());
    assert_eq!(
        seen(),
        ["create", "create-aborted"],
        "a dry run stores nothing"
    );
    let created = create_object(&state, &Recorded, obj(json!({})), None, false)
        .await
        .unwrap();
    assert_eq!(seen(), ["create", "created"]);

    let refused = write_update(
        &state,
        &Recorded,
        &created,
        obj(json!({"bad": "x"})),
        UpdateKind::Main,
        false,
        None,
    )
    .await;
    assert_eq!(refused.unwrap_err().code, 422);
    assert_eq!(seen(), ["update", "update-aborted"]);
    let updated = write_update(
        &state,
        &Recorded,
        &created,
        obj(json!({"k": "v"})),
        UpdateKind::Main,
        false,
        None,
    )
    .await
    .unwrap();
    assert_eq!(seen(), ["update", "updated"]);

    delete_object(&state, &Recorded, updated, &Options::default())
        .await
        .unwrap();
    assert_eq!(seen(), ["delete", "deleted"]);
}
