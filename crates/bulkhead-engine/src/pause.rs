//! `pause` and `unpause`: the container's host cgroup frozen and thawed (its processes in process
//! isolation, QEMU and so the whole guest in a VM), as docker and runc do with the cgroup freezer. A
//! paused container refuses signals (docker's "unpause it first"); a forced removal thaws it first, as
//! a frozen process cannot die.

use crate::isolation;
use crate::lifecycle::wrong_state;
use crate::state::{ContainerState, Status};
use crate::{events, fsutil, Container, Engine, EngineError};

impl Engine {
    pub fn pause(&self, key: &str) -> Result<Container, EngineError> {
        self.set_paused(key, true)
    }

    pub fn unpause(&self, key: &str) -> Result<Container, EngineError> {
        self.set_paused(key, false)
    }

    fn set_paused(&self, key: &str, paused: bool) -> Result<Container, EngineError> {
        let c = self.find(key)?;
        let lock = c.lock()?;
        let mut state: ContainerState = fsutil::read_json(&c.paths.state())?;
        crate::state::reconcile(&mut state);
        if state.status != Status::Running {
            return Err(wrong_state(
                &c,
                "only a running container can be paused or unpaused",
            ));
        }
        if state.paused == paused {
            let what = if paused {
                "it is already paused"
            } else {
                "it is not paused"
            };
            return Err(wrong_state(&c, what));
        }
        freeze(&c, paused)?;
        state.paused = paused;
        fsutil::write_json(&c.paths.state(), &state)?;
        drop(lock);
        events::container(
            &self.layout,
            &c.config,
            if paused { "pause" } else { "unpause" },
            &[],
        );
        self.find(c.id())
    }
}

/// Freezes or thaws the cgroup of `c`'s isolation mode.
pub(crate) fn freeze(c: &Container, frozen: bool) -> Result<(), EngineError> {
    let name = isolation::mode(c.config.isolation).host_cgroup(&c.config.id);
    let cgroup = bulkhead_runtime::cgroups::Cgroup::open(&name)?;
    Ok(cgroup.freeze(frozen)?)
}
