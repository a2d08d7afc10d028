//! Layer tars built in memory with full control over headers, so that tests can also make the hostile
//! members (`..`, absolute names, escaping links) that the tar crate's own path checks would refuse.

use std::io::Write;

/// Every member's mtime: fixed, so that identical layers have identical digests.
pub const MTIME: u64 = 1_600_000_000;

/// Builds a layer tar in memory.
pub struct LayerBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    /// Writes a header whose name (and link name) bytes are used verbatim, bypassing the tar crate's
    /// path sanitising, so hostile names can be produced.
    fn raw(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Self {
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                gnu.linkname = [0; 100];
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data).expect("append");
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = Self::header(tar::EntryType::Directory, mode, 0, 0);
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let h = Self::header(tar::EntryType::Regular, mode, uid, gid);
        self.raw(h, path.as_bytes(), None, data)
    }

    pub fn file_with_xattr(
        &mut self,
        path: &str,
        data: &[u8],
        xattr: &str,
        value: &[u8],
    ) -> &mut Self {
        let key = format!("SCHILY.xattr.{xattr}");
        self.builder
            .append_pax_extensions([(key.as_str(), value)])
            .expect("pax");
        self.file(path, data, 0o644)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.raw(h, path.as_bytes(), Some(target.as_bytes()), b"")
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.raw(h, path.as_bytes(), Some(target.as_bytes()), b"")
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Fifo, 0o600, 0, 0);
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn chardev(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn blockdev(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Block, 0o666, 0, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.raw(h, path.as_bytes(), None, b"")
    }

    /// The tar so far; the builder starts over empty.
    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().expect("finish tar")
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).expect("zstd into memory")
}
