//! `Engine::wait_for` through the facade, on containers that are never started (no monitor needed):
//! what returns at once, what waits, and a wait its caller gives up on.

use bulkhead_engine::{
    CreateOptions, Engine, EngineConfig, EngineError, WaitCondition, WaitOutcome,
};
use std::cell::Cell;
use std::time::{Duration, Instant};

fn engine(root: &std::path::Path) -> Engine {
    let engine = Engine::open(EngineConfig::load(root).unwrap()).unwrap();
    engine
        .import_rootfs(bulkhead_testkit::demo_rootfs_tar(), "demo")
        .unwrap();
    engine
}

#[test]
fn waits_end_at_once_wait_or_are_cancelled_by_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let opts = CreateOptions {
        image: "demo".into(),
        cmd: vec!["true".into()],
        network: Some("none".into()),
        ..CreateOptions::default()
    };
    let c = engine.create(&opts, &|_| {}).unwrap();
    let done = WaitOutcome {
        exit_code: 0,
        error: None,
    };
    // A created container is not running: at once.
    let t0 = Instant::now();
    assert_eq!(
        engine
            .wait_for(c.id(), WaitCondition::NotRunning, &|| false)
            .unwrap(),
        done
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    // Its next exit and its removal are still to come: the caller's `keep_waiting` ends the waits.
    for condition in [WaitCondition::NextExit, WaitCondition::Removed] {
        let polls = Cell::new(0);
        let keep_waiting = || {
            polls.set(polls.get() + 1);
            polls.get() < 5
        };
        let result = engine.wait_for(c.id(), condition, &keep_waiting);
        assert!(
            matches!(result, Err(EngineError::Cancelled)),
            "{condition:?}: {result:?}"
        );
        assert_eq!(polls.get(), 5, "{condition:?}");
    }
    // Removed (here by the caller, while it waits) without ever running: no exit was recorded, so 0,
    // as docker reports it.
    let polls = Cell::new(0);
    let remove_on_third_poll = || {
        polls.set(polls.get() + 1);
        if polls.get() == 3 {
            engine.remove(c.id(), false, false).unwrap();
        }
        true
    };
    let outcome = engine
        .wait_for(c.id(), WaitCondition::Removed, &remove_on_third_poll)
        .unwrap();
    assert_eq!((outcome, polls.get()), (done, 3));
    // A container that is gone is no longer found.
    assert!(matches!(
        engine.wait_for(c.id(), WaitCondition::NotRunning, &|| true),
        Err(EngineError::NoSuchContainer(_))
    ));
}
