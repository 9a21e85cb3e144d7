//! A tiny HTTP/1.1 client for the tests: the replicas' and the operator's admin ports and the
//! demo service (plain HTTP, one request per connection).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Failure, Outcome};

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `method` to `http://HOST:PORT/PATH` with `body`, waiting at most `timeout`.
pub async fn request(method: &str, url: &str, body: &str, timeout: Duration) -> Outcome<Answer> {
    let rest = url.strip_prefix("http://").ok_or_else(|| Failure(format!("not an http:// URL: {url}")))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Failure(format!("{method} {url}: no answer within {timeout:?}")))?
        .map_err(|e| Failure(format!("{method} {url}: {e}")))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| Failure(format!("{method} {url}: bad answer {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure(format!("{method} {url}: bad status line in {head:?}")))?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET, expecting 200; the body.
pub async fn get(url: &str) -> Outcome<String> {
    let a = request("GET", url, "", Duration::from_secs(5)).await?;
    if a.status != 200 {
        return Err(Failure(format!("GET {url}: {} {}", a.status, a.body)));
    }
    Ok(a.body)
}
