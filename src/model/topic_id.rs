//! [`TopicId`]: a topic's 16-byte id (Kafka's topic UUID, KIP-516); a topic deleted and created
//! again under the same name gets a new one.

use serde::{Deserialize, Serialize};

/// A topic's 16-byte id (Kafka's topic UUID, KIP-516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// A random id from the OS's random source.
    pub fn random() -> std::io::Result<TopicId> {
        let mut bytes = [0u8; 16];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        // Kafka's ids are version-4 UUIDs.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(TopicId(bytes))
    }

    /// The id as 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 16];
        if text.len() != 32 {
            return Err(serde::de::Error::custom("topic id must be 32 hex digits"));
        }
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(TopicId(bytes))
    }
}
