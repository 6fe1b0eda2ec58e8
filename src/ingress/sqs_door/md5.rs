//! The MD5 digests SQS answers with, which SDKs recompute and compare (PROTOCOLS.md §12.3).

use md5::{Digest, Md5};

use super::wire::{AttrValue, Attribute};

/// `MD5OfMessageBody`: the lowercase hex MD5 of the body's UTF-8 bytes.
pub fn of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// `MD5OfMessageAttributes` (or of system attributes): `None` when there are none. Names sorted
/// bytewise; per attribute the length-prefixed name and data type, a transport byte (1 text,
/// 2 binary) and the length-prefixed value.
pub fn of_attributes(attributes: &[(String, Attribute)]) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut sorted: Vec<&(String, Attribute)> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut md5 = Md5::new();
    for (name, attr) in sorted {
        put(&mut md5, name.as_bytes());
        put(&mut md5, attr.data_type.as_bytes());
        match &attr.value {
            AttrValue::Text(s) => {
                md5.update([1u8]);
                put(&mut md5, s.as_bytes());
            }
            AttrValue::Binary(b) => {
                md5.update([2u8]);
                put(&mut md5, b);
            }
        }
    }
    Some(hex::encode(md5.finalize()))
}

/// Appends `bytes` with its 4-byte big-endian length before it.
fn put(md5: &mut Md5, bytes: &[u8]) {
    md5.update((bytes.len() as u32).to_be_bytes());
    md5.update(bytes);
}
