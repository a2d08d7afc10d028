//! Manifests, indexes and image configs as a registry or an image archive delivers them: the first byte
//! chooses which parser gets the rest (the image store's document parser with each declared media type,
//! its config parser, and the registry's platform selection).
#![no_main]

use libfuzzer_sys::fuzz_target;

const DECLARED: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, doc)) = data.split_first() else {
        return;
    };
    match choice % 3 {
        0 => {
            let declared = DECLARED[usize::from(choice / 3) % DECLARED.len()];
            let _ = bulkhead_image::fuzzing::parse_manifest(doc, declared);
        }
        1 => {
            let _ = bulkhead_image::fuzzing::parse_config(doc);
        }
        _ => {
            let _ = bulkhead_registry::fuzzing::select_platform(doc);
        }
    }
});
