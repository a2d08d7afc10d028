//! Busybox images: a small in-memory layer for image-store tests, and the demo image's rootfs tarball
//! that the end-to-end tests import (the same one `scripts/main.sh` and the benchmarks use).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::layer::LayerBuilder;
use crate::oci::sha256;

const BUSYBOX: &str = "/bin/busybox";

fn busybox_binary() -> Vec<u8> {
    std::fs::read(BUSYBOX).expect("busybox-static is installed (/bin/busybox)")
}

/// A busybox rootfs layer with fixed mtimes: /bin/busybox with a few applet links, /etc/passwd and
/// /etc/group (root and user 1000), and a sticky /tmp.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = busybox_binary();
    let mut b = LayerBuilder::new();
    b.dir("bin/", 0o755).file("bin/busybox", &busybox, 0o755);
    for applet in ["sh", "ls", "cat", "echo", "id", "stat", "true"] {
        b.symlink(&format!("bin/{applet}"), "busybox");
    }
    b.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\nuser:x:1000:\n", 0o644)
        .dir("tmp/", 0o1777);
    b.finish()
}

/// The demo image's rootfs tarball, made by `scripts/busybox-rootfs.sh` (every applet, users `root`,
/// `user` and `nobody`, /etc/motd). It is cached under the temp dir by the digest of the script and
/// the busybox binary: under cargo-nextest every test is its own process, and one build serves all.
pub fn demo_rootfs_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let mut key = std::fs::read(&script).expect("scripts/busybox-rootfs.sh");
        key.extend(busybox_binary());
        let cache = std::env::temp_dir().join("bulkhead-testkit");
        std::fs::create_dir_all(&cache).expect("testkit cache dir");
        let tar = cache.join(format!("demo-rootfs-{}.tar", &sha256(&key)[7..23]));
        if !tar.exists() {
            // Built beside, renamed into place: concurrent test processes never read a partial tarball.
            let partial = tar.with_extension(format!("{}.partial", std::process::id()));
            let out = Command::new("bash")
                .arg(&script)
                .arg(&partial)
                .output()
                .expect("running busybox-rootfs.sh");
            assert!(
                out.status.success(),
                "busybox-rootfs.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(&partial, &tar).expect("caching the demo rootfs");
        }
        tar
    })
}
