//! One HTTP/1.1 GET to tailscaled's LocalAPI, over its unix socket or, for the
//! macOS apps, over loopback TCP with the same-user token as the Basic auth
//! password (empty user name).
//!
//! tailscaled refuses (403) a request whose Host is not `local-tailscaled.sock`
//! or that carries an Origin or Referer header (its guard against browsers), so
//! the request is built by hand with exactly that Host and nothing else.

use std::net::Ipv4Addr;

use base64::Engine as _;
use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use super::{Endpoint, Error};

/// The Host the LocalAPI insists on; no DNS lookup happens.
const HOST: &str = "local-tailscaled.sock";

/// Sends `GET path_and_query` to `endpoint` (a socket or the apps' TCP port)
/// on a fresh connection and returns the status and body. The caller bounds it
/// with a timeout; dropping this future drops the connection with it, since
/// nothing is spawned.
pub(super) async fn get(endpoint: &Endpoint, path_and_query: &str) -> Result<(StatusCode, Bytes), Error> {
    let mut request = Request::get(path_and_query).header(header::HOST, HOST);
    match endpoint {
        Endpoint::Socket(socket) => {
            let connect_error = |error| Error::Connect { socket: socket.clone(), error };
            let stream = UnixStream::connect(socket).await.map_err(connect_error)?;
            exchange(stream, request).await
        }
        Endpoint::Tcp { port, token } => {
            let address = (Ipv4Addr::LOCALHOST, *port);
            let connect_error = |error| Error::Connect { socket: format!("127.0.0.1:{port}").into(), error };
            let stream = TcpStream::connect(address).await.map_err(connect_error)?;
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!(":{token}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {credentials}"));
            exchange(stream, request).await
        }
        Endpoint::Command(program) => {
            Err(Error::Http(format!("{} is a command, not a LocalAPI address", program.display())))
        }
    }
}

/// One request and its answer on a fresh connection.
async fn exchange<S>(stream: S, request: hyper::http::request::Builder) -> Result<(StatusCode, Bytes), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_error)?;
    let request = request.body(String::new()).map_err(|error| Error::Http(error.to_string()))?;
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(http_error)?.to_bytes();
        // `sender` is dropped here, which lets `connection` finish.
        Ok((status, body))
    };
    // The connection must be polled for the exchange to progress; it ends once
    // the exchange is over. Its own error only matters if the exchange failed,
    // and then the exchange's error says more.
    let (answer, _closed) = tokio::join!(exchange, connection);
    answer
}

fn http_error(error: hyper::Error) -> Error {
    Error::Http(error.to_string())
}

/// The message of an error answer: tailscaled writes plain text ending in a
/// newline, sometimes `{"Error": "..."}`.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Json {
        #[serde(rename = "Error")]
        error: String,
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(json) if !json.error.is_empty() => json.error,
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// Escapes a query value the way Go's `url.QueryEscape` does for the
/// characters an address holds: an IPv6 `[v6]:port` keeps its brackets and
/// colons only when escaped.
pub(super) fn query_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_escaped_like_go_query_escape() {
        assert_eq!(query_escape("100.101.3.4:41234"), "100.101.3.4%3A41234");
        assert_eq!(query_escape("[fd7a:115c:a1e0::1]:80"), "%5Bfd7a%3A115c%3Aa1e0%3A%3A1%5D%3A80");
    }

    #[test]
    fn error_messages_come_from_plain_text_or_json() {
        assert_eq!(error_message(b"invalid localapi request\n"), "invalid localapi request");
        assert_eq!(error_message(b"{\"Error\":\"bad password\"}"), "bad password");
    }
}
