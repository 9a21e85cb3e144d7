//! An in-process stand-in for the Kubernetes API server, for the reconciler's error paths: a
//! tower service that kube's `Client` sends its HTTP requests to. It keeps objects by path,
//! applies the patches kube sends (server-side apply as a merge, JSON Patch, merge patch),
//! answers lists from the stored objects, records every request and Event, and answers with an
//! error where a test injects one. It is not an API server: no validation, no resource
//! versions, no label selectors (a test stores only the pods a list should return).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};

/// One injected failure: requests with this method whose path starts with `path` answer `code`.
struct Fault {
    method: &'static str,
    path: String,
    code: u16,
    message: String,
    remaining: usize,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<(String, String)>,
    events: Vec<Value>,
    faults: Vec<Fault>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn reason_of(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "InternalError",
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// A kube client whose requests this fake answers.
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores an object at its API path.
    pub fn put(&self, path: &str, object: Value) {
        self.state.lock().unwrap().objects.insert(path.to_string(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// The next `times` requests with `method` to paths starting with `path` answer `code`.
    pub fn fail(&self, method: &'static str, path: &str, code: u16, message: &str, times: usize) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            path: path.to_string(),
            code,
            message: message.to_string(),
            remaining: times,
        });
    }

    /// Requests so far with this method to a path starting with `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.requests.iter().filter(|(m, p)| m == method && p.starts_with(path)).count()
    }

    /// The Events published so far: (type, reason, note).
    pub fn events(&self) -> Vec<(String, String, String)> {
        let field = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
        self.state
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| (field(e, "type"), field(e, "reason"), field(e, "note")))
            .collect()
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let content_type =
            req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (code, answer) = self.answer(&method, &path, &content_type, body);
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap()
    }

    fn answer(&self, method: &str, path: &str, content_type: &str, body: Value) -> (u16, Value) {
        let mut state = self.state.lock().unwrap();
        state.requests.push((method.to_string(), path.to_string()));
        if let Some(fault) = state
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.starts_with(&f.path))
        {
            fault.remaining -= 1;
            return status(fault.code, reason_of(fault.code), &fault.message);
        }
        if path.contains("/events") && method == "POST" {
            state.events.push(body.clone());
            return (201, body);
        }
        if path.contains("/events/") && method == "PATCH" {
            return (200, body);
        }
        // A subresource (`.../status`) lives inside its object.
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (path.to_string(), false),
        };
        match method {
            "GET" => match state.objects.get(&object_path) {
                Some(o) => (200, o.clone()),
                None => {
                    let prefix = format!("{object_path}/");
                    let items: Vec<Value> = state
                        .objects
                        .iter()
                        .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
                        .map(|(_, o)| o.clone())
                        .collect();
                    if items.is_empty() && !is_collection(&object_path) {
                        return status(404, "NotFound", &format!("{object_path} not found"));
                    }
                    (200, json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}))
                }
            },
            "DELETE" => match state.objects.remove(&object_path) {
                Some(o) => (200, o),
                None => status(404, "NotFound", &format!("{object_path} not found")),
            },
            "PATCH" => {
                let current = state.objects.get(&object_path).cloned();
                let next = if content_type.starts_with("application/apply-patch") {
                    let mut base = current.unwrap_or_else(|| json!({}));
                    if subresource {
                        base["status"] = body["status"].clone();
                    } else {
                        json_patch::merge(&mut base, &body);
                    }
                    base
                } else if content_type.starts_with("application/json-patch") {
                    let Some(mut base) = current else {
                        return status(404, "NotFound", &format!("{object_path} not found"));
                    };
                    let ops: json_patch::Patch = match serde_json::from_value(body) {
                        Ok(p) => p,
                        Err(e) => return status(422, "Invalid", &e.to_string()),
                    };
                    if let Err(e) = json_patch::patch(&mut base, &ops) {
                        return status(422, "Invalid", &e.to_string());
                    }
                    base
                } else {
                    let Some(mut base) = current else {
                        return status(404, "NotFound", &format!("{object_path} not found"));
                    };
                    json_patch::merge(&mut base, &body);
                    base
                };
                state.objects.insert(object_path, next.clone());
                (200, next)
            }
            "POST" => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!("{object_path}/{name}");
                if state.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{key} already exists"));
                }
                state.objects.insert(key, body.clone());
                (201, body)
            }
            _ => status(405, "MethodNotAllowed", method),
        }
    }
}

/// Whether a path names a collection (`.../namespaces/NS/pods`), which lists empty rather than
/// answering 404.
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) => parts.len() == i + 3,
        None => parts.len() <= 4,
    }
}
