//! A token server for the registry's token auth: checks basic credentials and hands out
//! ES256 JWTs (signing cert in the `x5c` header) granting what the scope asks for.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const SERVICE: &str = "skiff-test-registry";
pub const ISSUER: &str = "skiff-test-issuer";

pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    pub cert_pem: String,
    task: tokio::task::JoinHandle<()>,
}

struct Keys {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    users: Vec<(String, String)>,
}

impl TokenServer {
    pub async fn start(users: &[(&str, &str)]) -> TokenServer {
        let certified = rcgen::generate_simple_self_signed(vec!["skiff-token".into()]).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.signing_key.serialize_der(),
            &rng,
        )
        .unwrap();
        let keys = Arc::new(Keys {
            key,
            cert_der: certified.cert.der().to_vec(),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let app = Router::new().route("/token", get(token)).with_state(keys);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TokenServer {
            realm,
            cert_pem: certified.cert.pem(),
            task,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn token(
    State(keys): State<Arc<Keys>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let user = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|up| {
            let (u, p) = up.split_once(':')?;
            keys.users
                .iter()
                .any(|(uu, pp)| uu == u && pp == p)
                .then(|| u.to_string())
        });
    let Some(user) = user else {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"details":"incorrect username or password"}"#,
        )
            .into_response();
    };
    let query: HashMap<String, Vec<String>> =
        query.into_iter().fold(HashMap::new(), |mut m, (k, v)| {
            m.entry(k).or_default().push(v);
            m
        });
    let access: Vec<serde_json::Value> = query
        .get("scope")
        .into_iter()
        .flatten()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&keys.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user,
        "aud": SERVICE,
        "exp": now + 600,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", rand_id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let sig = keys.key.sign(&rng, signing_input.as_bytes()).unwrap();
    let jwt = format!("{signing_input}.{}", b64(sig.as_ref()));
    axum::Json(serde_json::json!({ "token": jwt, "access_token": jwt, "expires_in": 600 }))
        .into_response()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
