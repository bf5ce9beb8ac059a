//! etcd's v3 JSON gateway (`POST /v3/kv/range`, `POST /v3/kv/txn`, served by every etcd
//! member since 3.4 on its client port): the three requests the lease needs, over
//! HTTP/1.1 (HTTPS with `[witness.tls]`) on kept-alive connections, each bounded in
//! time, on each endpoint in turn until one answers. Keys and values travel
//! base64-encoded, revisions as decimal strings (proto3's JSON mapping).
//!
//! The building and reading of bodies is pure and unit-tested against etcd's own
//! answers; [`Client::send`] only moves bytes.
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde_json::{json, Value};

use super::lease::{Answer, Key, Request};

/// The value stored under the write key.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stored {
    holder: String,
    term: u64,
}

/// The path and JSON body of `req` for the key `key`, written by node `me`.
pub fn body(key: &str, me: &str, req: &Request) -> (&'static str, Value) {
    let k = B64.encode(key);
    let write = |holder: &str, term: u64| {
        let v = serde_json::to_vec(&Stored {
            holder: holder.to_string(),
            term,
        })
        .expect("plain struct");
        json!({"request_put": {"key": k, "value": B64.encode(v)}})
    };
    let compare = |expect: Option<i64>| match expect {
        // Absent: never created.
        None => json!({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
        Some(rev) => {
            json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string()})
        }
    };
    let txn = |expect: Option<i64>, put: Value| {
        json!({
            "compare": [compare(expect)],
            "success": [put],
            "failure": [{"request_range": {"key": k}}],
        })
    };
    match req {
        Request::Read => ("/v3/kv/range", json!({"key": k})),
        Request::Look => ("/v3/kv/range", json!({"key": k, "serializable": true})),
        Request::Write { expect, term } => ("/v3/kv/txn", txn(*expect, write(me, *term))),
        Request::Free { expect, term } => ("/v3/kv/txn", txn(Some(*expect), write("", *term))),
    }
}

/// What etcd's answer (a 200's JSON body) to `req` says.
pub fn parse(req: &Request, v: &Value) -> Result<Answer, String> {
    match req {
        Request::Read | Request::Look => Ok(Answer::Read(key_of(v)?)),
        Request::Write { .. } | Request::Free { .. } => {
            // proto3 JSON leaves out a false `succeeded`.
            if v["succeeded"].as_bool().unwrap_or(false) {
                let rev = int(&v["header"]["revision"]).ok_or("no header.revision")?;
                Ok(Answer::Done { revision: rev })
            } else {
                let range = &v["responses"][0]["response_range"];
                Ok(Answer::Conflict(key_of(range)?))
            }
        }
    }
}

/// The key in a range answer (`kvs[0]`), None when it has none.
fn key_of(range: &Value) -> Result<Option<Key>, String> {
    let Some(kv) = range["kvs"].as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let revision = int(&kv["mod_revision"]).ok_or("kvs[0] without mod_revision")?;
    let raw = B64
        .decode(kv["value"].as_str().unwrap_or(""))
        .map_err(|e| format!("kvs[0].value: {e}"))?;
    let stored: Stored = serde_json::from_slice(&raw).map_err(|e| {
        format!(
            "the write key holds {:?}, not what xvrrpd writes ({e}): another program uses this key prefix",
            String::from_utf8_lossy(&raw)
        )
    })?;
    Ok(Some(Key {
        holder: stored.holder,
        term: stored.term,
        revision,
    }))
}

/// A proto3 JSON int64: a decimal string (or a number).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A kept-alive HTTP/1.1 connection to one member.
type Conn = hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>;

/// The etcd members and the write key, as configured.
pub struct Client {
    /// `host:port` of each member's client URL.
    endpoints: Vec<String>,
    key: String,
    me: String,
    /// HTTPS when set.
    tls: Option<super::tls::Tls>,
    /// The bound on one request, all endpoints tried included.
    timeout: Duration,
    /// The bound on one member's try (at most its share of `timeout`).
    attempt: Duration,
    /// The member that answered last: tried first.
    preferred: usize,
    /// One kept-alive connection per member: a renewal every few tens of ms must not
    /// pay a TCP (and TLS) handshake each time.
    conns: Vec<Option<Conn>>,
}

impl Client {
    pub fn new(
        endpoints: Vec<String>,
        key: String,
        me: String,
        tls: Option<super::tls::Tls>,
        timeout: Duration,
    ) -> Self {
        let conns = endpoints.iter().map(|_| None).collect();
        Self {
            endpoints,
            key,
            me,
            tls,
            timeout,
            attempt: timeout,
            preferred: 0,
            conns,
        }
    }

    /// Bounds each member's try at `attempt`. When etcd's leader dies, the followers
    /// forward a write to it until they notice (an election timeout), and such a write
    /// is never answered: waiting the whole share of the bound on it would delay the
    /// next try past the new leader's election. A write abandoned that way may still
    /// take; the lease counts such a write from its first try.
    pub fn with_attempt(mut self, attempt: Duration) -> Self {
        self.attempt = attempt.min(self.timeout);
        self
    }

    /// Sends `req`: the first member that answers decides; Failed when none does in time.
    pub async fn send(&mut self, req: &Request) -> Answer {
        let (path, body) = body(&self.key, &self.me, req);
        let body = body.to_string();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let n = self.endpoints.len();
        for i in 0..n {
            let at = (self.preferred + i) % n;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Each member gets a fair share of what is left, and no more than a try.
            let share = (left / (n - i) as u32).min(self.attempt);
            match tokio::time::timeout(share, self.post(at, path, &body)).await {
                Ok(Ok(v)) => match parse(req, &v) {
                    Ok(a) => {
                        self.preferred = at;
                        return a;
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %self.endpoints[at], error = %e, "witness: unreadable answer");
                    }
                },
                Ok(Err(e)) => {
                    self.conns[at] = None;
                    tracing::debug!(endpoint = %self.endpoints[at], error = %e, "witness: no answer")
                }
                Err(_) => {
                    // Whatever was under way on it is abandoned with it.
                    self.conns[at] = None;
                    tracing::debug!(endpoint = %self.endpoints[at], "witness: timed out")
                }
            }
        }
        Answer::Failed
    }

    /// Reads the key from every member in turn (`xvrrpd check`): what each answered, or
    /// why it did not.
    pub async fn probe(&mut self) -> Vec<(String, Result<Option<Key>, String>)> {
        let (path, body) = body(&self.key, &self.me, &Request::Read);
        let body = body.to_string();
        let mut out = Vec::new();
        for at in 0..self.endpoints.len() {
            let got = match tokio::time::timeout(self.timeout, self.post(at, path, &body)).await {
                Ok(Ok(v)) => match parse(&Request::Read, &v) {
                    Ok(Answer::Read(k)) => Ok(k),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(e),
                },
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            out.push((self.endpoints[at].clone(), got));
        }
        out
    }

    /// POSTs `body` to member `at` on its kept connection; when that one turns out to
    /// be closed (the member restarted, an idle timeout), once more on a new one.
    async fn post(&mut self, at: usize, path: &str, body: &str) -> Result<Value, String> {
        if let Some(conn) = self.conns[at].as_mut() {
            if conn.ready().await.is_ok() {
                match post_on(conn, &self.endpoints[at], path, body).await {
                    Ok(v) => return Ok(v),
                    Err(Sent::Answered(e)) => return Err(e),
                    Err(Sent::Lost(e)) => {
                        tracing::debug!(endpoint = %self.endpoints[at], error = %e, "witness: kept connection lost, reconnecting");
                    }
                }
            }
        }
        self.conns[at] = None;
        let mut conn = connect(&self.endpoints[at], self.tls.as_ref()).await?;
        let v = post_on(&mut conn, &self.endpoints[at], path, body)
            .await
            .map_err(|e| match e {
                Sent::Answered(e) | Sent::Lost(e) => e,
            })?;
        self.conns[at] = Some(conn);
        Ok(v)
    }
}

/// Opens a connection to `endpoint`, through TLS when `tls` is set.
async fn connect(endpoint: &str, tls: Option<&super::tls::Tls>) -> Result<Conn, String> {
    let stream = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => handshake(stream).await,
        Some(tls) => {
            let name = super::tls::name_of(tls, endpoint)?;
            let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            handshake(stream).await
        }
    }
}

/// HTTP/1.1 over `io` (TCP, or TLS over TCP); the connection driven by its own task.
async fn handshake<T>(io: T) -> Result<Conn, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| chain(&e))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `e` with its causes: hyper's own message alone ("connection error") hides the TLS
/// alert that says why a member refused this node.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s += &format!(": {c}");
        cause = c.source();
    }
    s
}

/// Why a POST failed: with an answer from the member, or with the connection lost
/// before one came.
enum Sent {
    Answered(String),
    Lost(String),
}

/// One POST of a JSON body on `conn`; the answer's JSON when the status is 200.
/// The largest answer read from an etcd member.
const MAX_ANSWER: usize = 1 << 20;

async fn post_on(conn: &mut Conn, endpoint: &str, path: &str, body: &str) -> Result<Value, Sent> {
    use http_body_util::{BodyExt, Full};
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, endpoint)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(hyper::body::Bytes::from(body.to_string())))
        .map_err(|e| Sent::Answered(e.to_string()))?;
    let resp = conn
        .send_request(req)
        .await
        .map_err(|e| Sent::Lost(chain(&e)))?;
    let status = resp.status();
    // Bounded: an answer is a few hundred bytes; a member (or whoever answers in its
    // place) must not make the agent buffer without limit.
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| Sent::Lost(format!("reading the answer: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(Sent::Answered(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| Sent::Answered(format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn requests_are_reads_and_compare_and_swaps_on_the_revision() {
        let (path, v) = body("/xvrrpd/pair/write", "db1", &Request::Read);
        assert_eq!(path, "/v3/kv/range");
        assert_eq!(v["key"], b64("/xvrrpd/pair/write"));
        let (path, v) = body(
            "k",
            "db1",
            &Request::Write {
                expect: Some(41),
                term: 3,
            },
        );
        assert_eq!(path, "/v3/kv/txn");
        assert_eq!(v["compare"][0]["target"], "MOD");
        assert_eq!(v["compare"][0]["mod_revision"], "41");
        let put = &v["success"][0]["request_put"];
        let stored: Stored =
            serde_json::from_slice(&B64.decode(put["value"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(
            stored,
            Stored {
                holder: "db1".into(),
                term: 3
            }
        );
        assert_eq!(v["failure"][0]["request_range"]["key"], b64("k"));
        // Absent: compared on the creation revision 0.
        let (_, v) = body(
            "k",
            "db1",
            &Request::Write {
                expect: None,
                term: 1,
            },
        );
        assert_eq!(v["compare"][0]["target"], "CREATE");
        assert_eq!(v["compare"][0]["create_revision"], "0");
        // Free: the same swap, holder empty, term kept.
        let (_, v) = body("k", "db1", &Request::Free { expect: 9, term: 3 });
        let put = &v["success"][0]["request_put"];
        let stored: Stored =
            serde_json::from_slice(&B64.decode(put["value"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!((stored.holder.as_str(), stored.term), ("", 3));
    }

    /// Answers as etcd 3.4's gateway writes them.
    #[test]
    fn answers_are_read_as_etcd_writes_them() {
        let value = b64(r#"{"holder":"db2","term":7}"#);
        let range: Value = serde_json::from_str(&format!(
            r#"{{"header":{{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"}},
               "kvs":[{{"key":"aw==","create_revision":"3","mod_revision":"12","version":"5","value":"{value}"}}],"count":"1"}}"#
        ))
        .unwrap();
        let key = Key {
            holder: "db2".into(),
            term: 7,
            revision: 12,
        };
        assert_eq!(
            parse(&Request::Read, &range).unwrap(),
            Answer::Read(Some(key.clone()))
        );
        let empty: Value =
            serde_json::from_str(r#"{"header":{"revision":"12","raft_term":"2"}}"#).unwrap();
        assert_eq!(parse(&Request::Read, &empty).unwrap(), Answer::Read(None));
        let write = Request::Write {
            expect: Some(11),
            term: 8,
        };
        let done: Value = serde_json::from_str(
            r#"{"header":{"revision":"13"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"13"}}}]}"#,
        )
        .unwrap();
        assert_eq!(parse(&write, &done).unwrap(), Answer::Done { revision: 13 });
        // A failed compare: `succeeded` left out, the range answer in `responses`.
        let conflict: Value = serde_json::from_str(&format!(
            r#"{{"header":{{"revision":"12"}},"responses":[{{"response_range":{}}}]}}"#,
            range
        ))
        .unwrap();
        assert_eq!(
            parse(&write, &conflict).unwrap(),
            Answer::Conflict(Some(key))
        );
        // Someone else's data under the prefix: named, not guessed at.
        let foreign: Value = serde_json::from_str(&format!(
            r#"{{"kvs":[{{"mod_revision":"4","value":"{}"}}]}}"#,
            b64("hello")
        ))
        .unwrap();
        let e = parse(&Request::Read, &foreign).unwrap_err();
        assert!(e.contains("another program"), "{e}");
    }
}
