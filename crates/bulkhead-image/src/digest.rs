//! Content digests (`sha256:<64 hex>`) and the image id built on them.
//!
//! Only sha256 is accepted: it is what every registry and `docker save` produce, and refusing other
//! algorithms up front keeps blob paths and comparisons unambiguous.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::ImageError;

const SHA256_PREFIX: &str = "sha256:";
const SHA256_HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Digest of an in-memory byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// Builds a digest from its 64-character lowercase hex part.
    pub fn from_hex(hex: &str) -> Result<Digest, ImageError> {
        if hex.len() != SHA256_HEX_LEN {
            return Err(ImageError::InvalidDigest {
                input: hex.to_string(),
                reason: format!(
                    "sha256 needs {SHA256_HEX_LEN} hex digits, got {}",
                    hex.len()
                ),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ImageError::InvalidDigest {
                input: hex.to_string(),
                reason: "not lowercase hexadecimal".to_string(),
            });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The hex part, used as the blob file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm name (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Digest, ImageError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(ImageError::InvalidDigest {
                input: s.to_string(),
                reason: "expected <algorithm>:<hex>".to_string(),
            });
        };
        if algorithm != "sha256" {
            return Err(ImageError::InvalidDigest {
                input: s.to_string(),
                reason: format!("unsupported digest algorithm {algorithm:?} (only sha256)"),
            });
        }
        Digest::from_hex(hex).map_err(|e| match e {
            ImageError::InvalidDigest { reason, .. } => ImageError::InvalidDigest {
                input: s.to_string(),
                reason,
            },
            other => other,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256_PREFIX}{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ImageError;

    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest, ImageError> {
        d.to_string().parse()
    }
}

impl Digest {
    /// Converts to the `oci-spec` digest type used by its manifest builders.
    pub fn to_oci(&self) -> Result<oci_spec::image::Digest, ImageError> {
        oci_spec::image::Sha256Digest::from_str(&self.hex)
            .map(Into::into)
            .map_err(|e| ImageError::InvalidDigest {
                input: self.to_string(),
                reason: e.to_string(),
            })
    }
}

/// An image id: the digest of the image's config blob, as in docker.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub Digest);

impl ImageId {
    /// The first 12 hex digits, as shown by `docker images`.
    pub fn short(&self) -> &str {
        &self.0.hex()[..12]
    }

    /// The underlying config digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A `Write` sink that computes the sha256 digest and length of everything written to it.
#[derive(Default)]
pub(crate) struct DigestHasher {
    hasher: Sha256,
    len: u64,
}

impl DigestHasher {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn finish(self) -> Digest {
        Digest {
            hex: hex::encode(self.hasher.finalize()),
        }
    }
}

impl Write for DigestHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_sha256() {
        let s = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(Digest::of_bytes(b"hello"), d);
    }

    #[test]
    fn rejects_other_algorithms_and_lengths() {
        let err = "sha512:abcd".parse::<Digest>().unwrap_err().to_string();
        assert!(
            err.contains("unsupported digest algorithm \"sha512\""),
            "{err}"
        );
        let err = "sha256:abcd".parse::<Digest>().unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(upper.parse::<Digest>().is_err());
        assert!("nocolon".parse::<Digest>().is_err());
    }

    #[test]
    fn hasher_matches_of_bytes() {
        let mut h = DigestHasher::default();
        h.write_all(b"hel").unwrap();
        h.write_all(b"lo").unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(h.finish(), Digest::of_bytes(b"hello"));
    }
}
