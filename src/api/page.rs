//! The status page's shell at `/` and its assets under `/ui/`: embedded in
//! the binary (no CDN, no network at run time), plain ES modules with no
//! build step, served without a key because they hold no data (the page
//! fetches it from the API with its session cookie). Every answer carries a
//! strict Content-Security-Policy and an `ETag`, so a browser revalidates
//! and gets `304` until the binary changes.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha1::{Digest, Sha1};

/// What the page may load and where it may connect: only this origin, no
/// inline script or style, no framing, no `<base>`.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file of the page.
pub(crate) struct Asset {
    pub(crate) path: &'static str,
    content_type: &'static str,
    pub(crate) body: &'static str,
}

/// Every file of the page, the shell first; the rest are served under `/ui/`.
pub(crate) const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: HTML, body: include_str!("page/index.html") },
    Asset { path: "/ui/app.js", content_type: SCRIPT, body: include_str!("page/app.js") },
    Asset { path: "/ui/session.js", content_type: SCRIPT, body: include_str!("page/session.js") },
    Asset { path: "/ui/views.js", content_type: SCRIPT, body: include_str!("page/views.js") },
    Asset { path: "/ui/conversations.js", content_type: SCRIPT, body: include_str!("page/conversations.js") },
    Asset { path: "/ui/actions.js", content_type: SCRIPT, body: include_str!("page/actions.js") },
    Asset { path: "/ui/topology.js", content_type: SCRIPT, body: include_str!("page/topology.js") },
    Asset { path: "/ui/app.css", content_type: "text/css; charset=utf-8", body: include_str!("page/app.css") },
];

const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";

pub(super) async fn shell(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// `/ui/{file}`: one of the page's files, else `404`.
pub(super) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/ui/{file}");
    match ASSETS.iter().find(|asset| asset.path == path) {
        Some(asset) => serve(asset, &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The asset, or `304` when the browser's copy (`If-None-Match`) is current.
fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let current = request.get(header::IF_NONE_MATCH).is_some_and(|presented| presented.as_bytes() == tag.as_bytes());
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_str(&tag).expect("a quoted hex digest is a valid header value")),
    ];
    if current { (StatusCode::NOT_MODIFIED, headers).into_response() } else { (headers, asset.body).into_response() }
}

/// A strong validator of the asset's content, computed once per asset.
fn etag(asset: &Asset) -> String {
    static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha1::digest(asset.body.as_bytes());
                let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    let index = ASSETS.iter().position(|known| known.path == asset.path).expect("the asset is one of ASSETS");
    TAGS[index].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #21: the page's whole transfer stays well under 150 KB.
    #[test]
    fn the_whole_page_weighs_well_under_150_kb() {
        let total: usize = ASSETS.iter().map(|asset| asset.body.len()).sum();
        assert!(total < 100 * 1024, "the page's assets total {total} bytes");
    }

    #[test]
    fn the_shell_loads_only_its_own_assets_and_nothing_inline() {
        let shell = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(shell.contains(asset.path), "the shell loads {}", asset.path);
        }
        for forbidden in ["http://", "https://", "<style", " style=", "onclick", "onload"] {
            assert!(!shell.contains(forbidden), "the shell holds {forbidden:?}");
        }
        assert!(!shell.contains("<script>"), "no inline script: the CSP refuses it");
        for asset in ASSETS {
            assert!(!asset.body.contains("//cdn") && !asset.body.contains("https://"), "{} reaches out", asset.path);
        }
    }
}
