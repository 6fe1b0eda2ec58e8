//! Reading a notification's JSON in one pass: [`tag_of`] finds `notificationType` without
//! building anything, and [`WithoutTag`] hands the rest of the object to the type's payload
//! struct (which refuses unknown fields) as if the tag were not there.
//!
//! Hand-written rather than serde's internally tagged enums: those buffer the whole object into
//! serde's private `Content` tree first (the cost this avoids), and they cannot say which field
//! of which type was wrong. Errors here are plain serde errors; the caller falls back to the
//! `serde_json::Value` path to name the field (see `accept::parse`), so this only has to be
//! right, not explanatory.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The key that selects the type.
pub const TAG: &str = "notificationType";

/// The `notificationType` of a JSON object, read without building the object: `Ok(None)` when
/// it is absent; an error when the value is not an object or the tag is not a string.
pub fn tag_of<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Tag;
    impl<'de> Visitor<'de> for Tag {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut tag = None;
            while let Some(key) = map.next_key::<Key<'de>>()? {
                if key.0 == TAG {
                    if tag.is_some() {
                        return Err(de::Error::duplicate_field(TAG));
                    }
                    tag = Some(map.next_value::<Key<'de>>()?.0);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(tag)
        }
    }
    de.deserialize_map(Tag)
}

/// A string, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        de.deserialize_str(V)
    }
}

/// A deserializer for a JSON object that skips its top-level `notificationType` member, so a
/// payload struct with `deny_unknown_fields` can read the object as it came. Anything but an
/// object is refused.
pub struct WithoutTag<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutTag<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(SkipVisitor(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(SkipVisitor(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct SkipVisitor<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(SkipMap(map))
    }
}

struct SkipMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.0.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            if key.0 == TAG {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return match key.0 {
                Cow::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
                Cow::Owned(s) => seed.deserialize(de::value::StringDeserializer::new(s)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct P {
        user_id: String,
        #[serde(default)]
        data: Option<serde_json::Value>,
    }

    fn without_tag(s: &str) -> Result<P, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(s);
        let p = P::deserialize(WithoutTag(&mut de))?;
        de.end()?;
        Ok(p)
    }

    fn tag(s: &str) -> Result<Option<String>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(s);
        let t = tag_of(&mut de)?.map(Cow::into_owned);
        de.end()?;
        Ok(t)
    }

    #[test]
    fn the_tag_is_found_anywhere_and_only_at_the_top() {
        assert_eq!(
            tag(r#"{"a":{"notificationType":"X"},"notificationType":"SMS"}"#)
                .unwrap()
                .as_deref(),
            Some("SMS")
        );
        assert_eq!(tag(r#"{"a":[1,{"b":null}]}"#).unwrap(), None);
        // Escapes are decoded, as serde_json would.
        assert_eq!(
            tag(r#"{"notification\u0054ype":"S\u004dS"}"#).unwrap().as_deref(),
            Some("SMS")
        );
        assert!(tag(r#"{"notificationType":1}"#).is_err());
        assert!(tag(r#"{"notificationType":"SMS","notificationType":"SMS"}"#).is_err());
        assert!(tag(r#"["notificationType"]"#).is_err());
        assert!(tag("{} x").is_err());
    }

    #[test]
    fn the_payload_reads_the_object_without_its_tag() {
        let p = without_tag(r#"{"notificationType":"APP_NOTIFICATION","userId":"42","data":{"notificationType":1}}"#)
            .unwrap();
        assert_eq!(p.user_id, "42");
        // Only the top-level tag is skipped; a nested one is data.
        assert_eq!(p.data, Some(serde_json::json!({"notificationType": 1})));
        // Unknown fields are still refused, and a struct is never read from an array.
        assert!(without_tag(r#"{"notificationType":"X","userId":"42","tilte":"x"}"#).is_err());
        assert!(without_tag(r#"["42"]"#).is_err());
        assert!(without_tag(r#"{"userId":"42"}"#).is_ok());
        assert!(without_tag(r#"{"userId":"4\"2"}"#).unwrap().user_id == "4\"2");
        assert!(without_tag(r#"{"userId":"42"} trailing"#).is_err());
    }
}
