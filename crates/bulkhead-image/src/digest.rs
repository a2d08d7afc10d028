//! Content digests (`sha256:<64 hex>`) and the image id built on them.
//!
//! Only sha256 is accepted: it is what every registry and `docker save` produce, and refusing other
//! algorithms up front keeps blob paths and comparisons unambiguous. The hex part is validated by
//! oci-spec's `Sha256Digest`; our type adds what oci-spec's digests lack: an order (blob sets and
//! maps are sorted) and the sha256-only rule with an error that names the algorithm.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use oci_spec::image::{DigestAlgorithm, Sha256Digest};
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
        let valid = Sha256Digest::from_str(hex).map_err(|e| ImageError::InvalidDigest {
            input: hex.to_string(),
            reason: format!("sha256 needs {SHA256_HEX_LEN} hex digits, in lowercase: {e}"),
        })?;
        Ok(Digest {
            hex: valid.digest().to_string(),
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
            return Err(unsupported_algorithm(s, algorithm));
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

    /// Refuses algorithms other than sha256; oci-spec has already checked a sha256 value's hex.
    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest, ImageError> {
        if *d.algorithm() != DigestAlgorithm::Sha256 {
            return Err(unsupported_algorithm(d.as_ref(), d.algorithm().as_ref()));
        }
        Ok(Digest {
            hex: d.digest().to_string(),
        })
    }
}

fn unsupported_algorithm(input: &str, algorithm: &str) -> ImageError {
    ImageError::InvalidDigest {
        input: input.to_string(),
        reason: format!("unsupported digest algorithm {algorithm:?} (only sha256)"),
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
    fn converts_oci_digests() {
        let sha256 = format!("sha256:{}", "ab".repeat(32));
        let oci: oci_spec::image::Digest = sha256.parse().unwrap();
        assert_eq!(Digest::try_from(&oci).unwrap().to_string(), sha256);
        let sha512: oci_spec::image::Digest =
            format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
        let err = Digest::try_from(&sha512).unwrap_err().to_string();
        assert!(
            err.contains("unsupported digest algorithm \"sha512\""),
            "{err}"
        );
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
