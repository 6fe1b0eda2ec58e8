//! Swagger UI at `/docs` and the document at `/openapi.json`.
//!
//! Swagger UI's files are embedded gzip-compressed (utoipa-swagger-ui's `gzip` feature): its
//! 4.3 MB of JavaScript and CSS take 1.1 MB of the binary instead, which keeps the image under
//! 30 MB (bench/README.md). utoipa serves them with `Content-Encoding: gzip` whatever the client
//! asked for; every browser accepts that, but a client that does not say `Accept-Encoding: gzip`
//! (curl without `--compressed`, a script) gets them inflated here, so nobody is sent an encoding
//! it did not accept.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The largest embedded file inflated for a client (the biggest, swagger-ui-bundle.js, is 1.5 MB).
const MAX_INFLATED: u64 = 8 * 1024 * 1024;

/// Swagger UI and the document, for [`super::router`] to merge. The document is serialized once
/// here and kept as its 52 KB of JSON: utoipa would keep the built `OpenApi` value (~1 MB of heap,
/// measured with heaptrack; bench/README.md) and serialize a clone of it for every request.
pub fn routes<S: Clone + Send + Sync + 'static>(doc: utoipa::openapi::OpenApi) -> Router<S> {
    let json = axum::body::Bytes::from(serde_json::to_vec(&doc).expect("the OpenAPI document serializes"));
    drop(doc);
    let document = axum::routing::get(move || {
        let json = json.clone();
        async move { ([(CONTENT_TYPE, "application/json")], json) }
    });
    Router::from(SwaggerUi::new("/docs").config(Config::from("/openapi.json")))
        .route("/openapi.json", document)
        .layer(middleware::from_fn(encoding))
}

/// Leaves a gzip body as it is for a client that accepts gzip, inflates it for one that does not.
async fn encoding(req: Request, next: Next) -> Response {
    let gzip_ok = accepts_gzip(req.headers());
    let mut res = next.run(req).await;
    if res.headers().get(CONTENT_ENCODING).is_none_or(|v| v != "gzip") {
        return res;
    }
    res.headers_mut()
        .append(VARY, HeaderValue::from_static("accept-encoding"));
    if gzip_ok {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let inflated = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(gz) => inflate(&gz),
        Err(e) => Err(std::io::Error::other(e)),
    };
    match inflated {
        Ok(plain) => {
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(plain))
        }
        Err(e) => {
            tracing::error!(error = %e, "an embedded Swagger UI file could not be inflated");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Swagger UI file could not be inflated",
            )
                .into_response()
        }
    }
}

fn inflate(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(gz.len() * 4);
    flate2::read::GzDecoder::new(gz)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut plain)?;
    if plain.len() as u64 > MAX_INFLATED {
        return Err(std::io::Error::other("larger than 8 MiB inflated"));
    }
    Ok(plain)
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3: `gzip`, `x-gzip` or `*`, unless
/// its weight is 0). No header: only the identity encoding.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight_zero = parts.any(|p| {
                let p = p.trim();
                (p.starts_with("q=") || p.starts_with("Q=")) && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            });
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(!weight_zero),
                "*" => any = Some(!weight_zero),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn inflating_refuses_more_than_the_bound_instead_of_cutting_it_short() {
        use std::io::Write;
        let gzip = |len: usize| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&vec![b'a'; len]).unwrap();
            e.finish().unwrap()
        };
        let limit = MAX_INFLATED as usize;
        assert_eq!(inflate(&gzip(limit)).unwrap().len(), limit);
        assert!(inflate(&gzip(limit + 1)).is_err());
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(!accepts_gzip(&headers(&[])), "no header: identity only");
        assert!(accepts_gzip(&headers(&["gzip, deflate, br, zstd"])), "a browser");
        assert!(accepts_gzip(&headers(&["br;q=1.0, GZip;q=0.5"])));
        assert!(accepts_gzip(&headers(&["x-gzip"])));
        assert!(accepts_gzip(&headers(&["*"])));
        assert!(accepts_gzip(&headers(&["deflate", "gzip"])), "over two header lines");
        assert!(!accepts_gzip(&headers(&["identity"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=0"])), "weight 0 refuses it");
        assert!(
            !accepts_gzip(&headers(&["gzip; q=0.000, *"])),
            "named refusal beats the wildcard"
        );
        assert!(!accepts_gzip(&headers(&["*;q=0"])));
    }
}
