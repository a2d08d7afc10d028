//! Exec instances: docker creates an exec (`POST /containers/{id}/exec`), starts it later
//! (`POST /exec/{id}/start`), resizes it and asks for its exit code (`GET /exec/{id}/json`). The records
//! live in the server's memory only, bounded: finished ones are forgotten after [`KEEP_FINISHED`], ones
//! never started after [`KEEP_UNSTARTED`], and past [`MAX_EXECS`] a new one is refused.

use crate::error::ApiError;
use crate::hijack::InputSender;
use bulkhead_engine::ExecOptions;
use hyper::StatusCode;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KEEP_FINISHED: Duration = Duration::from_secs(5 * 60);
const KEEP_UNSTARTED: Duration = Duration::from_secs(60 * 60);
const MAX_EXECS: usize = 4096;

/// What `docker exec` asked for.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub container_id: String,
    pub options: ExecOptions,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone)]
pub enum ExecState {
    Created,
    /// `input` reaches the process (resize) while a client relays it.
    Running {
        input: Option<InputSender>,
    },
    /// The exit code, unless the relay ended before the process did.
    Finished {
        code: Option<i32>,
        at: Instant,
    },
}

#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub id: String,
    pub spec: ExecSpec,
    pub state: ExecState,
    created: Instant,
}

#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, ExecRecord>>,
}

impl Execs {
    /// Records a new exec; returns its id.
    pub fn create(&self, spec: ExecSpec) -> Result<String, ApiError> {
        let id = new_id()?;
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, r| match r.state {
            ExecState::Created => now.duration_since(r.created) < KEEP_UNSTARTED,
            ExecState::Running { .. } => true,
            ExecState::Finished { at, .. } => now.duration_since(at) < KEEP_FINISHED,
        });
        if map.len() >= MAX_EXECS {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("too many exec instances ({MAX_EXECS}); start or wait for some first"),
            ));
        }
        map.insert(
            id.clone(),
            ExecRecord {
                id: id.clone(),
                spec,
                state: ExecState::Created,
                created: now,
            },
        );
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Result<ExecRecord, ApiError> {
        self.lock().get(id).cloned().ok_or_else(|| no_such_exec(id))
    }

    /// Marks an exec started (once only: docker refuses a second start).
    pub fn begin(&self, id: &str, input: Option<InputSender>) -> Result<ExecRecord, ApiError> {
        let mut map = self.lock();
        let record = map.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        if !matches!(record.state, ExecState::Created) {
            return Err(ApiError::conflict(format!(
                "exec instance {id} has already been started"
            )));
        }
        record.state = ExecState::Running { input };
        Ok(record.clone())
    }

    pub fn finish(&self, id: &str, code: Option<i32>) {
        if let Some(record) = self.lock().get_mut(id) {
            record.state = ExecState::Finished {
                code,
                at: Instant::now(),
            };
        }
    }

    /// The channel to a running exec's process.
    pub fn input(&self, id: &str) -> Result<InputSender, ApiError> {
        match self.get(id)?.state {
            ExecState::Running { input: Some(input) } => Ok(input),
            _ => Err(ApiError::conflict(format!(
                "exec instance {id} is not running"
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecRecord>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn no_such_exec(id: &str) -> ApiError {
    ApiError::not_found(format!("No such exec instance: {id}"))
}

/// 64 hex digits, as docker's exec ids.
fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ApiError::internal(format!("/dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
