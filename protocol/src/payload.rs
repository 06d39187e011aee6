//! How payloads are encoded: [`Codec`]. The envelope (every frame's fields
//! but its payloads) is always postcard; payloads use the pool's codec,
//! which both sides announce in their `Hello`.

use std::fmt;
use std::str::FromStr;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::Error;

/// The encoding of request, response and event payloads, chosen per pool.
///
/// On the wire it is a varint: `0` postcard, `1` JSON.
///
/// # Examples
///
/// ```
/// use lpm_protocol::Codec;
///
/// let bytes = Codec::Json.encode(&serde_json::json!({ "Hello": "World" }))?;
/// assert_eq!(bytes, br#"{"Hello":"World"}"#);
/// let back: serde_json::Value = Codec::Json.decode(&bytes)?;
/// assert_eq!(back["Hello"], "World");
/// # Ok::<(), lpm_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Codec {
    /// Compact and fast, but not self-describing: both sides must use the
    /// same Rust types (untagged enums and `serde_json::Value` do not work).
    #[default]
    Postcard,
    /// Self-describing UTF-8 JSON (serde_json): any serde type works,
    /// `serde_json::Value` included, and a worker in another language
    /// needs only its standard JSON library for payloads.
    Json,
}

impl Codec {
    /// The codec's name as [`CODEC_ENV`](crate::CODEC_ENV) spells it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            Codec::Json => "json",
        }
    }

    /// Encodes `value` as a payload.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when serde cannot express the value in this codec.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, Error> {
        let encoded = match self {
            Codec::Postcard => postcard::experimental::serialized_size(value)
                // One allocation of the exact size, instead of a growing Vec.
                .and_then(|size| {
                    let mut out = Vec::with_capacity(size);
                    crate::codec::append_postcard(value, &mut out).map(|()| out)
                })
                .map_err(|e| e.to_string()),
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        encoded.map_err(|reason| Error::Encode { reason })
    }

    /// Decodes a payload as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the bytes are not this codec's encoding of a `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, Error> {
        let decoded = match self {
            Codec::Postcard => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        decoded.map_err(|reason| Error::Malformed { reason })
    }

    /// The codec named by [`CODEC_ENV`](crate::CODEC_ENV), else postcard.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownCodec`] when the variable names no codec.
    pub fn from_env() -> Result<Codec, Error> {
        match std::env::var(crate::CODEC_ENV) {
            Ok(name) => name.parse(),
            Err(_) => Ok(Codec::default()),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "postcard" => Ok(Codec::Postcard),
            "json" => Ok(Codec::Json),
            other => Err(Error::UnknownCodec {
                name: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for codec in [Codec::Postcard, Codec::Json] {
            assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
        }
        assert!(matches!(
            "yaml".parse::<Codec>(),
            Err(Error::UnknownCodec { name }) if name == "yaml"
        ));
    }

    #[test]
    fn postcard_is_compact_and_json_is_text() {
        let value = (7u32, "seven");
        assert_eq!(Codec::Postcard.encode(&value).unwrap(), b"\x07\x05seven");
        assert_eq!(Codec::Json.encode(&value).unwrap(), br#"[7,"seven"]"#);
        for codec in [Codec::Postcard, Codec::Json] {
            let bytes = codec.encode(&value).unwrap();
            assert_eq!(
                codec.decode::<(u32, String)>(&bytes).unwrap(),
                (7, "seven".to_owned())
            );
        }
    }

    #[test]
    fn a_json_value_needs_the_json_codec() {
        let value = serde_json::json!({ "Hello": "World" });
        assert!(Codec::Postcard
            .encode(&value)
            .is_ok_and(|bytes| { Codec::Postcard.decode::<serde_json::Value>(&bytes).is_err() }));
        let bytes = Codec::Json.encode(&value).unwrap();
        assert_eq!(
            Codec::Json.decode::<serde_json::Value>(&bytes).unwrap(),
            value
        );
    }
}
