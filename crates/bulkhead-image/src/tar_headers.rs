//! Bounded tar special headers. A GNU long name or long link, or a PAX extended header, is a member
//! whose data describes the next member; the `tar` crate reads such data whole into memory while it
//! iterates, before any of our limits sees it. A header claiming gigabytes (gzip shrinks a run of one
//! byte a thousandfold) would be allocated and read in full. [`HeaderGate`] sits between the
//! decompressed stream and the `tar` crate, follows the archive's layout header by header as the crate
//! does, and fails the read of any special header larger than [`MAX_SPECIAL_HEADER`] (Go's
//! archive/tar cap) before the crate gets its bytes. The bytes of special headers that pass are
//! counted ([`SpecialBytes`]), so they are charged to the unpack budget like member data.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use crate::error::ImageError;

/// Largest special header (GNU long name/link, PAX local or global) accepted, in bytes.
pub(crate) const MAX_SPECIAL_HEADER: u64 = 1 << 20;

const BLOCK: usize = 512;
/// Where a GNU sparse extension block says another one follows.
const EXT_IS_EXTENDED: usize = 504;

/// A special header larger than [`MAX_SPECIAL_HEADER`]; carried inside the `io::Error` the `tar`
/// crate passes on, and turned into [`ImageError::LimitExceeded`] by [`tar_error`].
#[derive(Debug, thiserror::Error)]
#[error("{kind} of {size} bytes exceeds the limit of {MAX_SPECIAL_HEADER} bytes")]
struct OversizedHeader {
    kind: &'static str,
    size: u64,
}

/// The layer error for an error of the `tar` crate: an oversized special header is a limit with its
/// cause named, anything else a corrupt tar.
pub(crate) fn tar_error(layer: &str, e: io::Error) -> ImageError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OversizedHeader>())
    {
        Some(over) => ImageError::LimitExceeded {
            layer: layer.to_string(),
            what: over.kind,
            limit: MAX_SPECIAL_HEADER,
        },
        None => crate::layer::corrupt(layer, e),
    }
}

/// Bytes of special headers read since the last [`SpecialBytes::take`].
#[derive(Clone, Default)]
pub(crate) struct SpecialBytes(Rc<Cell<u64>>);

impl SpecialBytes {
    pub(crate) fn take(&self) -> u64 {
        self.0.replace(0)
    }
}

/// A `tar` archive over `reader` whose special headers are bounded, and the counter of their bytes.
pub(crate) fn archive<R: Read>(reader: R) -> (tar::Archive<HeaderGate<R>>, SpecialBytes) {
    let special = SpecialBytes::default();
    let gate = HeaderGate {
        inner: reader,
        state: State::Header,
        block: [0; BLOCK],
        filled: 0,
        pax: None,
        pax_size: None,
        special: special.clone(),
    };
    (tar::Archive::new(gate), special)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Collecting the 512-byte header of the next member.
    Header,
    /// Collecting a GNU sparse extension block; the member's data (`size`) follows the last one.
    SparseExt { size: u64 },
    /// Passing `left` bytes of member data (then padding); `capture` of them are a PAX header's
    /// records, kept to learn the size it sets for the next member.
    Data { left: u64, capture: u64 },
    /// The end of the archive or a header the `tar` crate refuses: nothing more to follow.
    Through,
}

/// See the module documentation. Reads never cross a header boundary, so an oversized header fails
/// exactly the read in which the `tar` crate asks for that header.
pub(crate) struct HeaderGate<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// Records of the PAX header being captured.
    pax: Option<Vec<u8>>,
    /// The size a PAX header set for the next member, as the `tar` crate applies it.
    pax_size: Option<u64>,
    special: SpecialBytes,
}

impl<R: Read> Read for HeaderGate<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.state {
            State::Header | State::SparseExt { .. } => BLOCK - self.filled,
            State::Data { left, .. } => usize::try_from(left).unwrap_or(usize::MAX),
            State::Through => buf.len(),
        }
        .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

impl<R> HeaderGate<R> {
    /// Advances the layout over `bytes`, which never extend past the current state.
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.state {
            State::Through => {}
            State::Data { left, capture } => {
                let n = bytes.len() as u64;
                let captured = capture.min(n);
                if let Some(pax) = &mut self.pax {
                    pax.extend_from_slice(&bytes[..captured as usize]);
                }
                if capture > 0 && captured == capture {
                    if let Some(pax) = self.pax.take() {
                        self.pax_size = pax_size(&pax);
                    }
                }
                self.state = if left == n {
                    State::Header
                } else {
                    State::Data {
                        left: left - n,
                        capture: capture - captured,
                    }
                };
            }
            State::Header | State::SparseExt { .. } => {
                self.block[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
                self.filled += bytes.len();
                if self.filled == BLOCK {
                    self.filled = 0;
                    self.state = match self.state {
                        State::SparseExt { size } => self.after_sparse_ext(size),
                        _ => self.after_header()?,
                    };
                }
            }
        }
        Ok(())
    }

    /// The state after a complete header block, as the `tar` crate (not in raw mode) reads it.
    fn after_header(&mut self) -> io::Result<State> {
        let header = tar::Header::from_byte_slice(&self.block);
        if self.block.iter().all(|&b| b == 0) || !checksum_ok(&self.block, header) {
            return Ok(State::Through);
        }
        let Ok(mut size) = header.entry_size() else {
            return Ok(State::Through);
        };
        let kind = header.entry_type();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let special = match kind {
            tar::EntryType::GNULongName => Some("GNU long name header"),
            tar::EntryType::GNULongLink => Some("GNU long link header"),
            tar::EntryType::XHeader => Some("PAX extended header"),
            tar::EntryType::XGlobalHeader => Some("PAX global header"),
            _ => None,
        };
        if let Some(kind) = special {
            if size > MAX_SPECIAL_HEADER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    OversizedHeader { kind, size },
                ));
            }
        }
        // Long names and local PAX headers are what the crate buffers; a global PAX header reaches
        // the caller as a member and is charged as one.
        let buffered = recognized
            && matches!(
                kind,
                tar::EntryType::GNULongName | tar::EntryType::GNULongLink | tar::EntryType::XHeader
            );
        if buffered {
            self.special.0.set(self.special.0.get() + size);
        }
        let mut capture = 0;
        if buffered && kind == tar::EntryType::XHeader && size > 0 {
            // At most MAX_SPECIAL_HEADER, checked above.
            self.pax = Some(Vec::with_capacity(size as usize));
            capture = size;
        } else if !buffered {
            // This header ends the run of special headers: a PAX size applies to it, unless it is
            // itself an extension header.
            if let Some(pax_size) = self.pax_size.take() {
                if special.is_none() {
                    size = pax_size;
                }
            }
            if recognized && kind == tar::EntryType::GNUSparse {
                if let Some(gnu) = header.as_gnu() {
                    if gnu.is_extended() {
                        return Ok(State::SparseExt { size });
                    }
                }
            }
        }
        Ok(data(size, capture))
    }

    fn after_sparse_ext(&self, size: u64) -> State {
        if self.block[EXT_IS_EXTENDED] == 1 {
            State::SparseExt { size }
        } else {
            data(size, 0)
        }
    }
}

/// Member data of `size` bytes padded to whole blocks.
fn data(size: u64, capture: u64) -> State {
    match size.checked_next_multiple_of(BLOCK as u64) {
        Some(0) => State::Header,
        Some(left) => State::Data { left, capture },
        // The crate refuses a size it cannot round: nothing sensible follows.
        None => State::Through,
    }
}

fn checksum_ok(block: &[u8; BLOCK], header: &tar::Header) -> bool {
    let sum = block[..148]
        .iter()
        .chain(&block[156..])
        .fold(0u32, |a, &b| a + u32::from(b))
        + 8 * 32;
    header.cksum().is_ok_and(|c| c == sum)
}

/// The `size` record of PAX records, as the `tar` crate reads it (the first one; none if a record
/// before it is malformed or its value is not a number).
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of `kind` for `path` with `size` bytes of data, checksummed.
    fn header(kind: tar::EntryType, path: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// The PAX record `key=value`, prefixed with its own length (which counts its own digits).
    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while body.len() + len.to_string().len() != len {
            len = body.len() + len.to_string().len();
        }
        format!("{len}{body}").into_bytes()
    }

    /// Appends `data` as a special member of `kind` (raw, as the tar crate's builder would not).
    fn special(out: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, data: &[u8]) {
        out.append(&header(kind, "././@LongLink", data.len() as u64), data)
            .unwrap();
    }

    fn members(tar_bytes: &[u8], gated: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let read = |archive: &mut tar::Archive<&mut dyn Read>| {
            let mut out = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                out.push((entry.path_bytes().into_owned(), data));
            }
            Ok(out)
        };
        let mut plain: &[u8] = tar_bytes;
        if gated {
            let (archive, _) = archive(&mut plain);
            let mut gate = archive.into_inner();
            read(&mut tar::Archive::new(&mut gate as &mut dyn Read))
        } else {
            read(&mut tar::Archive::new(&mut plain as &mut dyn Read))
        }
    }

    /// A tar with a long name, a long link target, PAX records (one setting the next member's size)
    /// and a global PAX header, then `tail` appended before the end blocks.
    fn varied(tail: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        let long = format!("dir/{}", "n".repeat(300));
        special(&mut out, tar::EntryType::GNULongName, long.as_bytes());
        out.append(&header(tar::EntryType::Regular, "short", 5), &b"hello"[..])
            .unwrap();
        special(&mut out, tar::EntryType::GNULongLink, b"/very/long/target");
        out.append(&header(tar::EntryType::Symlink, "link", 0), &[][..])
            .unwrap();
        let mut records = pax_record("size", "1000");
        records.extend(pax_record("user.attr", "x"));
        special(&mut out, tar::EntryType::XHeader, &records);
        // Header size 0; the PAX record makes it 1000, as the crate reads it.
        out.append(&header(tar::EntryType::Regular, "sized", 0), &[][..])
            .unwrap();
        out.get_mut().extend(std::iter::repeat_n(7u8, 1024));
        special(
            &mut out,
            tar::EntryType::XGlobalHeader,
            &pax_record("comment", "hi"),
        );
        tail(&mut out);
        out.into_inner().unwrap()
    }

    #[test]
    fn ordinary_special_headers_pass_unchanged_and_are_counted() {
        let tar_bytes = varied(|_| {});
        let plain = members(&tar_bytes, false).unwrap();
        assert_eq!(members(&tar_bytes, true).unwrap(), plain);
        assert_eq!(
            plain[2].1.len(),
            1000,
            "the PAX size applied: {:?}",
            plain[2].0
        );

        let mut reader: &[u8] = &tar_bytes;
        let (mut archive, special) = archive(&mut reader);
        let mut counted = Vec::new();
        for entry in archive.entries().unwrap() {
            drop(entry.unwrap());
            counted.push(special.take());
        }
        let records = pax_record("size", "1000").len() + pax_record("user.attr", "x").len();
        assert_eq!(counted, [304, 17, records as u64, 0]);
    }

    #[test]
    fn a_special_header_over_the_cap_is_refused_after_any_layout() {
        // Found only if the gate followed every member before it, the PAX-sized one included.
        let tar_bytes = varied(|out| {
            let name = vec![b'n'; MAX_SPECIAL_HEADER as usize + 1];
            special(out, tar::EntryType::GNULongName, &name);
            out.append(&header(tar::EntryType::Regular, "after", 0), &[][..])
                .unwrap();
        });
        let err = members(&tar_bytes, true).unwrap_err();
        let ImageError::LimitExceeded { what, limit, .. } = tar_error("l", err) else {
            panic!("not a limit");
        };
        assert_eq!((what, limit), ("GNU long name header", MAX_SPECIAL_HEADER));
    }

    #[test]
    fn the_cap_itself_is_accepted() {
        let mut out = tar::Builder::new(Vec::new());
        let name = vec![b'n'; MAX_SPECIAL_HEADER as usize];
        special(&mut out, tar::EntryType::GNULongName, &name);
        out.append(&header(tar::EntryType::Regular, "x", 0), &[][..])
            .unwrap();
        let found = members(&out.into_inner().unwrap(), true).unwrap();
        assert_eq!(found[0].0.len(), MAX_SPECIAL_HEADER as usize);
    }
}
