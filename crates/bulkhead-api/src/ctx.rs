//! What every request handler shares: the engine facade, and the server's own short-lived records
//! (attach requests waiting for their container to start, exec instances).

use crate::error::ApiError;
use crate::execs::Execs;
use bulkhead_engine::{Container, Engine, EngineError, Session, StartMode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub struct Ctx {
    pub engine: Arc<Engine>,
    pub attaches: PendingAttaches,
    pub execs: Execs,
}

impl Ctx {
    pub fn new(engine: Engine) -> Ctx {
        Ctx {
            engine: Arc::new(engine),
            attaches: PendingAttaches::default(),
            execs: Execs::default(),
        }
    }

    /// Runs an engine call on the blocking pool: the engine does file and socket I/O and waits on
    /// processes, which must never stall the connections served by the async workers.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| ApiError::internal(format!("engine call failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// `docker run` attaches before it starts the container. Such an attach waits here; `start` hands it
/// a session to the container's main process, having told the monitor to hold the process until one
/// attaches, so no early output is lost.
#[derive(Default)]
pub struct PendingAttaches {
    map: Mutex<HashMap<String, Vec<PendingAttach>>>,
    next_token: std::sync::atomic::AtomicU64,
}

pub struct PendingAttach {
    token: u64,
    stdin: bool,
    deliver: oneshot::Sender<Result<Session, ApiError>>,
}

/// A registered attach: the session arrives on `delivered`; `token` withdraws it.
pub struct Registration {
    pub token: u64,
    pub delivered: oneshot::Receiver<Result<Session, ApiError>>,
}

impl PendingAttaches {
    /// Registers an attach to container `id` (a full id), answered when the container starts.
    pub fn register(&self, id: &str, stdin: bool) -> Registration {
        let (deliver, delivered) = oneshot::channel();
        let token = self
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock()
            .entry(id.to_string())
            .or_default()
            .push(PendingAttach {
                token,
                stdin,
                deliver,
            });
        Registration { token, delivered }
    }

    /// Takes registration `token` back, for an attach that found its container started by someone
    /// else. `false` when a `start` of this server has taken it already: its session is on the way, and
    /// attaching again would come after the held process was released, missing its first output.
    pub fn withdraw(&self, id: &str, token: u64) -> bool {
        let mut map = self.lock();
        let Some(waiting) = map.get_mut(id) else {
            return false;
        };
        let before = waiting.len();
        waiting.retain(|p| p.token != token);
        let withdrawn = waiting.len() != before;
        if waiting.is_empty() {
            map.remove(id);
        }
        withdrawn
    }

    fn take(&self, id: &str) -> Vec<PendingAttach> {
        self.lock()
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.deliver.is_closed())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<PendingAttach>>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts container `key` (blocking: call from the blocking pool), handing a session to each attach
    /// waiting for it. With none waiting the container starts detached.
    pub fn start(&self, engine: &Engine, key: &str) -> Result<Container, EngineError> {
        let id = engine.find(key)?.config.id;
        let waiting = self.take(&id);
        if waiting.is_empty() {
            return engine.start(&id, StartMode::Detached);
        }
        let container = match engine.start(&id, StartMode::AttachFirst) {
            Ok(c) => c,
            Err(e) => {
                let error = ApiError::from(&e);
                for p in waiting {
                    let _ = p.deliver.send(Err(error.clone()));
                }
                return Err(e);
            }
        };
        let mut delivered = false;
        for p in waiting {
            let session = engine.attach(&id, p.stdin).map_err(ApiError::from);
            delivered |= p.deliver.send(session).is_ok();
        }
        if !delivered {
            // Every waiting client left meanwhile: one attach releases the held process.
            drop(engine.attach(&id, false)?);
        }
        Ok(container)
    }
}
