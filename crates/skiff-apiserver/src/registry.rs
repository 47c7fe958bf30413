//! What the API does per kind, the way Kubernetes' per-resource registry packages
//! (`pkg/registry/<group>/<kind>/strategy.go`) say it: each served kind is one file under
//! [`crate::kinds`] implementing [`Strategy`] — its resource entry, the k8s-openapi type its
//! objects decode into, the k8s-pb message of its protobuf bodies, defaulting, validation,
//! the `kubectl get` columns, what `spec` and `status` mean for its subresources, and its
//! admission-time work. The handlers, discovery, OpenAPI, protobuf decoding and the garbage
//! collector only reach kinds through [`Kind`], over the explicit list [`crate::kinds::ALL`].
//!
//! Shared rules (object metadata, pod specs and templates) live in [`crate::validation`],
//! [`crate::defaults`] and [`crate::table`]; kinds call them.

use std::fmt;

use futures::future::BoxFuture;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::protobuf::ProtobufBody;
use crate::resources::{Entry, ResourceInfo, Scoped, Sub};
use crate::router::ApiState;
use crate::table::{Column, AGE, NAME};
use crate::validation::{Errs, NameRule};

/// Where a kind's objects come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The store: every verb.
    Store,
    /// The resource metrics provider (`metrics.k8s.io`): get and list only.
    Metrics,
    /// The control plane's health (core/v1 ComponentStatus): get and list only.
    Components,
}

/// An object under validation: the JSON the API holds and the k8s-openapi value it decodes
/// into (already type-checked), so a kind validates whichever is clearer.
#[derive(Clone, Copy)]
pub struct Obj<'a, T> {
    pub json: &'a Value,
    pub typed: &'a T,
}

/// The points of a request at which a kind may do admission-time work (allocate, refuse,
/// create companions, release). Every point runs for requests through the API handlers (the
/// garbage collector and the namespace controller delete through the API too); objects
/// removed by other paths, such as a store restored from a backup, do not pass
/// [`Admission::Deleted`], so anything released there must also be repaired from the store.
///
/// A [`Admission::Create`] or [`Admission::Update`] that fails ends the request there: no
/// aborted point follows it, so a hook that fails undoes its own work first. One that
/// passes is followed by exactly one of created/create aborted, or updated/update aborted.
pub enum Admission<'a> {
    /// A create, after defaulting and before validation; may change the object.
    Create {
        obj: &'a mut Value,
        user: Option<&'a UserInfo>,
        dry_run: bool,
    },
    /// A create that passed [`Admission::Create`] but was not stored (invalid, conflict,
    /// dry run).
    CreateAborted { obj: &'a Value, dry_run: bool },
    /// The stored object of a create. Also run at start for the [`Strategy::bootstrap`]
    /// objects already stored, so it must be idempotent.
    Created { obj: &'a Value },
    /// An update of the main resource or of subresource `sub`, before validation.
    Update {
        new: &'a mut Value,
        old: &'a Value,
        sub: Option<Sub>,
        /// Who asks (None: the server itself).
        user: Option<&'a UserInfo>,
        dry_run: bool,
    },
    /// An update that passed [`Admission::Update`] and was stored (`obj`, replacing `old`),
    /// or deleted the object as its last finalizer went (then `obj` is the deleted object,
    /// after [`Admission::Deleted`]).
    Updated { obj: &'a Value, old: &'a Value },
    /// An update that passed [`Admission::Update`] but was not stored (invalid, conflict,
    /// dry run); `old` is still stored.
    UpdateAborted {
        new: &'a Value,
        old: &'a Value,
        dry_run: bool,
    },
    /// A delete request, before anything is written (refusing keeps the object).
    Delete { obj: &'a Value, dry_run: bool },
    /// The object is gone from the store.
    Deleted { obj: &'a Value },
}

/// One served kind. Only what differs from the defaults needs writing.
pub trait Strategy: Sync + Send + 'static {
    /// The k8s-openapi type of the objects (apiVersion, kind, plural, scope, schema).
    type Object: k8s_openapi::Resource<Scope: Scoped> + DeserializeOwned + JsonSchema + Default;
    /// The message a protobuf request body of this kind holds.
    type Protobuf: ProtobufBody;
    /// The rest of the resource entry.
    const RESOURCE: Entry;
    /// Objects carry `metadata.generation`, bumped when anything but metadata and status
    /// changes.
    const GENERATION: bool = false;
    /// A PUT of a missing object creates it.
    const CREATE_ON_UPDATE: bool = false;
    /// Deletion of a live object waits for its node to stop it (`deletionGracePeriodSeconds`).
    const GRACEFUL_DELETE: bool = false;
    /// Field selectors served besides `metadata.name` and `metadata.namespace`.
    const FIELD_SELECTORS: &'static [&'static str] = &[];
    /// The syntax of `metadata.name`.
    const NAME: NameRule = NameRule::Subdomain;
    /// The Table columns of `kubectl get` (all of them: the server prints wide).
    const COLUMNS: &'static [Column] = &[NAME, AGE];
    const BACKEND: Backend = Backend::Store;

    /// What decoding a body does besides typing it (Secret `stringData` folds into `data`).
    fn decode_body(&self, _obj: &mut Value) {}

    /// Fills in the fields a client left out (Kubernetes' `SetDefaults_*`).
    fn defaults(&self, _obj: &mut Value) {}

    /// Server-set state of a new object (Kubernetes discards client-set status on create).
    fn prepare_for_create(&self, obj: &mut Value) {
        if Self::RESOURCE.subresources.contains(&Sub::Status) {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
    }

    /// What a write of the main resource may not change: status when `/status` serves it.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if Self::RESOURCE.subresources.contains(&Sub::Status) {
            keep(new, old, "status");
        }
    }

    /// The object a write of subresource `sub` stores, from the written `new` and the
    /// stored `old`. `/status` takes only `status`; the others take nothing by default.
    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value {
        let mut out = old.clone();
        if sub == Sub::Status {
            keep(&mut out, &new, "status");
        }
        out
    }

    /// Adds the field errors of `new` (a create when `old` is None).
    fn validate(
        &self,
        _new: Obj<'_, Self::Object>,
        _old: Option<Obj<'_, Self::Object>>,
        _errs: &mut Errs,
    ) {
    }

    /// The cells of one Table row, matching [`Strategy::COLUMNS`].
    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![crate::table::name(obj), crate::table::age(obj)]
    }

    /// `obj`, an object of another version of this resource, in this kind's version.
    fn convert_from(&self, obj: Value) -> Value {
        obj
    }

    /// The label selector string of the `/scale` subresource.
    fn scale_selector(&self, obj: &Value) -> String {
        crate::selector::label_selector_string(
            obj.pointer("/spec/selector").unwrap_or(&Value::Null),
        )
    }

    /// The grace period a delete of `obj` waits (None: remove at once); only asked when
    /// [`Strategy::GRACEFUL_DELETE`].
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// Whether an object marked for deletion without finalizers must still wait (a
    /// namespace waits for its `spec.finalizers`).
    fn deletion_pending(&self, _obj: &Value) -> bool {
        false
    }

    /// What marking `obj` for deletion changes besides the deletion metadata.
    fn prepare_for_delete(&self, _obj: &mut Value) {}

    /// Objects every cluster has, created at start when missing.
    fn bootstrap(&self) -> Vec<Value> {
        Vec::new()
    }

    /// Admission-time work at `op` (see [`Admission`]); an error refuses the request.
    fn admit<'a>(
        &'a self,
        _state: &'a ApiState,
        _op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Sets `to[field]` to `from[field]` (removing it when `from` has none).
pub fn keep(to: &mut Value, from: &Value, field: &str) {
    match from.get(field) {
        Some(v) => to[field] = v.clone(),
        None => {
            if let Some(m) = to.as_object_mut() {
                m.remove(field);
            }
        }
    }
}

/// `obj` decoded into `T` (the default value when it does not fit; callers have
/// type-checked it already).
pub fn typed<T: DeserializeOwned + Default>(obj: &Value) -> T {
    T::deserialize(obj).unwrap_or_default()
}

/// A served kind, as the rest of the server sees it: every [`Strategy`] is one.
pub trait Kind: Sync + Send + 'static {
    fn info(&self) -> &'static ResourceInfo;
    fn generation(&self) -> bool;
    fn create_on_update(&self) -> bool;
    fn graceful_delete(&self) -> bool;
    fn field_selectors(&self) -> &'static [&'static str];
    fn columns(&self) -> &'static [Column];
    fn backend(&self) -> Backend;
    /// Registers the kind's schema in `gen` and returns its definition name.
    fn schema(&self, gen: &mut SchemaGenerator) -> String;
    /// The JSON object a protobuf body of this kind stands for.
    fn decode_protobuf(&self, raw: &[u8]) -> Result<Value, ApiError>;
    /// Type-checks `obj` against the k8s-openapi type (400 naming the field), then checks
    /// metadata and the kind's rules (422 with one cause per field).
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Result<(), ApiError>;
    fn decode_body(&self, obj: &mut Value);
    fn defaults(&self, obj: &mut Value);
    fn prepare_for_create(&self, obj: &mut Value);
    fn prepare_for_update(&self, new: &mut Value, old: &Value);
    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value;
    fn cells(&self, obj: &Value) -> Vec<Value>;
    fn convert_from(&self, obj: Value) -> Value;
    fn scale_selector(&self, obj: &Value) -> String;
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64>;
    fn deletion_pending(&self, obj: &Value) -> bool;
    fn prepare_for_delete(&self, obj: &mut Value);
    fn bootstrap(&self) -> Vec<Value>;
    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

impl fmt::Debug for dyn Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.info(), f)
    }
}

impl<S: Strategy> Kind for S {
    fn info(&self) -> &'static ResourceInfo {
        const { &ResourceInfo::of::<S::Object>(S::RESOURCE) }
    }
    fn generation(&self) -> bool {
        S::GENERATION
    }
    fn create_on_update(&self) -> bool {
        S::CREATE_ON_UPDATE
    }
    fn graceful_delete(&self) -> bool {
        S::GRACEFUL_DELETE
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        S::FIELD_SELECTORS
    }
    fn columns(&self) -> &'static [Column] {
        S::COLUMNS
    }
    fn backend(&self) -> Backend {
        S::BACKEND
    }
    fn schema(&self, gen: &mut SchemaGenerator) -> String {
        gen.subschema_for::<S::Object>();
        S::Object::schema_name().into_owned()
    }
    fn decode_protobuf(&self, raw: &[u8]) -> Result<Value, ApiError> {
        S::Protobuf::decode_json(raw).map_err(|e| {
            ApiError::bad_request(format!(
                "unable to decode {} from protobuf: {e}",
                self.info().kind
            ))
        })
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let info = self.info();
        let new_typed: S::Object = crate::validation::types::decode(info, obj)?;
        let old_typed: Option<S::Object> = old.map(typed);
        let mut errs = Errs::default();
        crate::validation::metadata(S::NAME, obj, &mut errs);
        let new = Obj {
            json: obj,
            typed: &new_typed,
        };
        let old = old
            .zip(old_typed.as_ref())
            .map(|(json, typed)| Obj { json, typed });
        Strategy::validate(self, new, old, &mut errs);
        errs.into_result(info, obj)
    }
    fn decode_body(&self, obj: &mut Value) {
        Strategy::decode_body(self, obj)
    }
    fn defaults(&self, obj: &mut Value) {
        Strategy::defaults(self, obj)
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        Strategy::prepare_for_create(self, obj)
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        Strategy::prepare_for_update(self, new, old)
    }
    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value {
        Strategy::prepare_for_subresource(self, sub, new, old)
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        Strategy::cells(self, obj)
    }
    fn convert_from(&self, obj: Value) -> Value {
        let mut out = Strategy::convert_from(self, obj);
        let info = self.info();
        out["apiVersion"] = json!(info.api_version());
        out["kind"] = json!(info.kind);
        out
    }
    fn scale_selector(&self, obj: &Value) -> String {
        Strategy::scale_selector(self, obj)
    }
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        Strategy::grace_period(self, obj, requested)
    }
    fn deletion_pending(&self, obj: &Value) -> bool {
        Strategy::deletion_pending(self, obj)
    }
    fn prepare_for_delete(&self, obj: &mut Value) {
        Strategy::prepare_for_delete(self, obj)
    }
    fn bootstrap(&self) -> Vec<Value> {
        Strategy::bootstrap(self)
    }
    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Strategy::admit(self, state, op)
    }
}
