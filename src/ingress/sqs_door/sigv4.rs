//! AWS Signature Version 4, verified as SQS does it (PROTOCOLS.md §12.5), so producers sign
//! exactly as they do for AWS: the `Authorization` header's credential, signed headers and
//! signature, `X-Amz-Date` within 15 minutes, and the hex SHA-256 of the body actually received
//! (a `x-amz-content-sha256` header is not trusted).
//!
//! Written here rather than taken from `aws-sigv4`: that crate signs requests but does not
//! verify them (no parser for a received `Authorization` header, no canonical form of a
//! request as received). The tests check this verifier against `aws-sigv4`'s own signatures.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// How far a request's `X-Amz-Date` may be from now.
pub const SKEW_MS: i64 = 15 * 60 * 1000;

/// Why a request is refused; each maps to SQS's error code and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    #[error("Signature expired: {0} is not within 15 minutes of the server's time.")]
    Expired(String),
}

impl SigV4Error {
    /// SQS's error code (query protocol) for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationToken",
            SigV4Error::Incomplete(_) => "IncompleteSignature",
            SigV4Error::UnknownKey => "InvalidClientTokenId",
            SigV4Error::Mismatch | SigV4Error::Expired(_) => "SignatureDoesNotMatch",
        }
    }

    /// The HTTP status SQS answers with.
    pub fn status(&self) -> u16 {
        match self {
            SigV4Error::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

/// The parts of a received request that the signature covers.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// Every header, as received (names in any case; a name may repeat).
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

/// A verified request: who signed it, and for which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub access_key: String,
    pub region: String,
}

/// Verifies `req`'s signature. `secret_of` gives the secret of an access key allim accepts.
pub fn verify(
    req: &Received<'_>,
    now_ms: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Signer, SigV4Error> {
    let header = |name: &str| -> Option<String> {
        let values: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.iter().map(|v| collapse(v)).collect::<Vec<_>>().join(","))
    };
    let auth = header("authorization").ok_or(SigV4Error::Missing)?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| SigV4Error::Incomplete("Authorization header must use AWS4-HMAC-SHA256.".into()))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.to_string()),
            Some(("SignedHeaders", v)) => signed_headers = Some(v.to_string()),
            Some(("Signature", v)) => signature = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires Credential, SignedHeaders and Signature.".into(),
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = scope[..] else {
        return Err(SigV4Error::Incomplete(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request.".into(),
        ));
    };
    if service != "sqs" || terminator != "aws4_request" {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped to service sqs and aws4_request, not {service}/{terminator}."
        )));
    }
    let amz_date = header("x-amz-date").ok_or_else(|| SigV4Error::Incomplete("X-Amz-Date is required.".into()))?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SigV4Error::Incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ.".into()))?
        .and_utc()
        .timestamp_millis();
    if !amz_date.starts_with(date) {
        return Err(SigV4Error::Incomplete(
            "Credential date does not match X-Amz-Date.".into(),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || names.iter().any(|n| n.is_empty() || *n != n.to_ascii_lowercase()) {
        return Err(SigV4Error::Incomplete(
            "SignedHeaders must be lowercase and include host.".into(),
        ));
    }
    let secret = secret_of(key).ok_or(SigV4Error::UnknownKey)?;
    if (now_ms - signed_at).abs() > SKEW_MS {
        return Err(SigV4Error::Expired(amz_date));
    }

    let mut canonical_headers = String::new();
    for name in &names {
        let value = header(name).ok_or(SigV4Error::Mismatch)?;
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&value);
        canonical_headers.push('\n');
    }
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        canonical_path(req.path),
        canonical_query(req.query.unwrap_or("")),
        hex::encode(Sha256::digest(req.body)),
    );
    let scope = format!("{date}/{region}/sqs/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "sqs", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let expected = hex::encode(hmac(&k, to_sign.as_bytes()));
    // Constant-time comparison: the signature is a secret-derived value.
    if subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into() {
        Ok(Signer {
            access_key: key.to_string(),
            region: region.to_string(),
        })
    } else {
        Err(SigV4Error::Mismatch)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A header value as signed: trimmed, runs of spaces made one.
fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &[u8]) -> String {
    percent_encoding::percent_encode(s, UNRESERVED).to_string()
}

/// The path as every service but S3 signs it: each segment of the received (already encoded)
/// path encoded once more.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(|seg| encode(seg.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Query parameters decoded, encoded strictly, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    use super::*;

    const KEY: &str = "AKIAALLIMTEST0000001";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Signs like an AWS SDK does (the `aws-sigv4` crate every Rust SDK client uses); returns
    /// the headers to send.
    fn signed(path_and_query: &str, body: &[u8], at: SystemTime) -> Vec<(String, String)> {
        let identity = aws_credential_types::Credentials::new(KEY, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("ap-northeast-2")
            .name("sqs")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut headers = vec![
            ("host".to_string(), "allim.internal:9324".to_string()),
            ("content-type".to_string(), "application/x-amz-json-1.0".to_string()),
            ("x-amz-target".to_string(), "AmazonSQS.SendMessage".to_string()),
        ];
        let uri = format!("http://allim.internal:9324{path_and_query}");
        let signable = SignableRequest::new(
            "POST",
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        headers.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
        headers
    }

    fn check(
        path_and_query: &str,
        headers: &[(String, String)],
        body: &[u8],
        now: SystemTime,
    ) -> Result<Signer, SigV4Error> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let req = Received {
            method: "POST",
            path,
            query,
            headers: headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            body,
        };
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        verify(&req, now_ms, |k| (k == KEY).then(|| SECRET.to_string()))
    }

    #[test]
    fn accepts_what_the_aws_signer_signs() {
        let now = SystemTime::now();
        let body = br#"{"QueueUrl":"http://allim.internal:9324/000000000000/orders","MessageBody":"{}"}"#;
        for target in [
            "/",
            "/000000000000/orders",
            "/?Action=SendMessage&MessageBody=a%20b%2Bc&Version=2012-11-05",
        ] {
            let headers = signed(target, body, now);
            assert_eq!(
                check(target, &headers, body, now),
                Ok(Signer {
                    access_key: KEY.into(),
                    region: "ap-northeast-2".into()
                }),
                "{target}"
            );
        }
    }

    #[test]
    fn refuses_what_does_not_hold() {
        let now = SystemTime::now();
        let body = b"Action=SendMessage&MessageBody=hello";
        let headers = signed("/", body, now);
        assert_eq!(
            check("/", &headers, b"Action=SendMessage&MessageBody=hellO", now),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(check("/other", &headers, body, now), Err(SigV4Error::Mismatch));
        let mut wrong_target = headers.clone();
        for (k, v) in &mut wrong_target {
            if k == "x-amz-target" {
                *v = "AmazonSQS.DeleteQueue".into();
            }
        }
        assert_eq!(check("/", &wrong_target, body, now), Err(SigV4Error::Mismatch));
        let late = now + Duration::from_secs(16 * 60);
        assert!(matches!(check("/", &headers, body, late), Err(SigV4Error::Expired(_))));
        assert!(check("/", &headers, body, now + Duration::from_secs(14 * 60)).is_ok());

        let unknown: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(KEY, "AKIAUNKNOWN000000000")))
            .collect();
        let e = check("/", &unknown, body, now).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidClientTokenId", 403));
        let none: Vec<(String, String)> = headers.iter().filter(|(k, _)| k != "authorization").cloned().collect();
        let e = check("/", &none, body, now).unwrap_err();
        assert_eq!((e.code(), e.status()), ("MissingAuthenticationToken", 403));
        let garbled: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == "authorization" {
                        "AWS4-HMAC-SHA256 Credential=x".into()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        let e = check("/", &garbled, body, now).unwrap_err();
        assert_eq!((e.code(), e.status()), ("IncompleteSignature", 400));
    }
}
