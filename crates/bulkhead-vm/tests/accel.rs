//! Accelerator detection against this machine's real /sys/module and /dev/kvm.

use bulkhead_vm::accel::{detect, AccelChoice, AccelError, AccelKind};
use std::path::Path;

fn hardware_kvm() -> bool {
    Path::new("/sys/module/kvm_intel").exists() || Path::new("/sys/module/kvm_amd").exists()
}

#[test]
fn paravirtual_kvm_falls_back_to_tcg_and_refuses_forced_kvm() {
    if hardware_kvm() || !Path::new("/sys/module/kvm_pvm").exists() {
        eprintln!("skipped: this host has no kvm_pvm (the case under test)");
        return;
    }
    let accel = detect(AccelChoice::Auto).unwrap();
    assert_eq!(accel.kind, AccelKind::Tcg);
    assert_eq!(
        accel.reason,
        "nested paravirtual KVM (kvm_pvm) cannot run a standard Linux guest"
    );
    match detect(AccelChoice::Kvm) {
        Err(AccelError::KvmUnusable(why)) => assert!(why.contains("kvm_pvm"), "{why}"),
        other => panic!("forcing kvm on kvm_pvm must fail, got {other:?}"),
    }
}

#[test]
fn auto_and_forced_kvm_agree() {
    let auto = detect(AccelChoice::Auto).unwrap();
    match (auto.kind, detect(AccelChoice::Kvm)) {
        (AccelKind::Kvm, Ok(forced)) => assert_eq!(forced.kind, AccelKind::Kvm),
        (AccelKind::Tcg, Err(AccelError::KvmUnusable(why))) => assert_eq!(why, auto.reason),
        (kind, forced) => panic!("auto chose {kind:?} but forced kvm gave {forced:?}"),
    }
}
