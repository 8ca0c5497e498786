//! A small stateful stand-in for kube-apiserver over plain HTTP on
//! 127.0.0.1, for whole-process tests of `check --report`: it keeps one
//! Node and the Events, applies patches the way the apiserver does (a JSON
//! merge patch replaces lists; a strategic merge patch merges
//! `status.conditions` by `type`), and records every request.
//!
//! Request shapes are tested exhaustively with the tower_test verifier in
//! src/report/tests.rs; this checks the binary end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
pub struct State {
    pub node: Value,
    pub events: Vec<Value>,
    pub requests: Vec<Request>,
    resource_version: u64,
}

pub struct FakeApi {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub fn start(node: Value) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            node,
            resource_version: 1000,
            ..State::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(conn, st));
            }
        });
        FakeApi { port, state }
    }

    /// Write a kubeconfig pointing at this server.
    pub fn kubeconfig(&self, path: &Path) {
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: http://127.0.0.1:{}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: node-token\n",
            self.port
        );
        std::fs::write(path, kc).unwrap();
    }

    /// Requests seen since the last call.
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.state.lock().unwrap().requests)
    }

    pub fn node(&self) -> Value {
        self.state.lock().unwrap().node.clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.clone()
    }
}

fn serve(conn: TcpStream, st: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let (mut len, mut content_type) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "content-type" => content_type = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if method == "GET" && path.starts_with("/api/v1/nodes?") && path.contains("watch=true") {
            st.lock().unwrap().requests.push(Request {
                method,
                path,
                content_type,
                body,
            });
            let _ = watch(&mut out, &st);
            return;
        }
        let (code, reply) = handle(&st, &method, &path, &content_type, body);
        let text = reply.to_string();
        let status = match code {
            200 => "200 OK",
            201 => "201 Created",
            404 => "404 Not Found",
            _ => "415 Unsupported Media Type",
        };
        let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len());
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A watch of the Node (the daemon's field-selected watch): ADDED, then
/// MODIFIED at each change, as chunked JSON lines, for up to 290 s.
fn watch(out: &mut TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    let (mut last, mut kind) = (Value::Null, "ADDED");
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(290) {
        let node = st.lock().unwrap().node.clone();
        if node != last {
            let line = format!("{}\n", json!({"type": kind, "object": node}));
            write!(out, "{:x}\r\n{line}\r\n", line.len())?;
            out.flush()?;
            (last, kind) = (node, "MODIFIED");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    out.write_all(b"0\r\n\r\n")
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}),
    )
}

fn handle(
    st: &Mutex<State>,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> (u16, Value) {
    let mut s = st.lock().unwrap();
    s.requests.push(Request {
        method: method.into(),
        path: path.into(),
        content_type: content_type.into(),
        body: body.clone(),
    });
    let route = path.split('?').next().unwrap_or("");
    let name = s.node["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let node_path = format!("/api/v1/nodes/{name}");
    let status_path = format!("{node_path}/status");
    s.resource_version += 1;
    let rv = s.resource_version.to_string();
    match (method, route) {
        ("GET", p) if p == node_path => (200, s.node.clone()),
        ("PATCH", p) if p == node_path || p == status_path => {
            let mut node = s.node.clone();
            match content_type {
                "application/merge-patch+json" => merge_patch(&mut node, &body),
                "application/strategic-merge-patch+json" => strategic_patch(&mut node, &body),
                other => {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!("unsupported patch type {other}"),
                    )
                }
            }
            node["metadata"]["resourceVersion"] = json!(rv);
            s.node = node;
            (200, s.node.clone())
        }
        ("POST", "/api/v1/namespaces/default/events") => {
            let mut ev = body;
            ev["metadata"]["resourceVersion"] = json!(rv);
            s.events.push(ev.clone());
            (201, ev)
        }
        (_, p) if p.starts_with("/api/v1/nodes/") => status(
            404,
            "NotFound",
            format!(
                "nodes \"{}\" not found",
                p.trim_start_matches("/api/v1/nodes/")
            ),
        ),
        _ => status(404, "NotFound", format!("no route {method} {path}")),
    }
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge for what Nodes need: `status.conditions` merged by `type`
/// (patchMergeKey), everything else as a merge patch.
fn strategic_patch(node: &mut Value, patch: &Value) {
    let mut patch = patch.clone();
    if let Some(conds) = patch.pointer_mut("/status/conditions").map(Value::take) {
        patch["status"]
            .as_object_mut()
            .unwrap()
            .remove("conditions");
        let list = node["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut list = list;
        for c in conds.as_array().cloned().unwrap_or_default() {
            match list.iter_mut().find(|x| x["type"] == c["type"]) {
                Some(x) => merge_patch(x, &c),
                None => list.push(c),
            }
        }
        node["status"]["conditions"] = Value::Array(list);
    }
    merge_patch(node, &patch);
}
