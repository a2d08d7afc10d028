//! The cached guest kernel (built here if the cache is empty) has every option the fragment asks for.

use bulkhead_vm::kernel::{self, missing_options, required_options};
use std::fs;

#[test]
fn built_kernel_has_every_required_option() {
    let cache = bulkhead_vm::default_cache_dir();
    let kernel = kernel::build(&cache, |line| eprintln!("{line}")).unwrap();
    assert_eq!(kernel::info(&cache).as_ref(), Some(&kernel));
    let config = fs::read_to_string(&kernel.config).unwrap();
    assert_eq!(missing_options(&config), Vec::<String>::new());
    assert!(required_options().count() > 50);
    assert!(config.lines().any(|l| l == "# CONFIG_MODULES is not set"));
    let vmlinux = fs::read(&kernel.vmlinux).unwrap();
    assert_eq!(&vmlinux[..4], b"\x7fELF");
    // The PVH entry point is an ELF note "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY (18) with a 64-bit
    // address: namesz 4, descsz 8, type 18, name.
    let mut pvh_note = [4u32, 8, 18].map(u32::to_le_bytes).concat();
    pvh_note.extend_from_slice(b"Xen\0");
    assert!(vmlinux
        .windows(pvh_note.len())
        .any(|w| w == pvh_note.as_slice()));
}
