//! The Docker Engine API front end: `bulkhead serve` listens where dockerd would and answers the docker
//! CLI, the Docker SDKs and docker-compose, by calling the engine facade and nothing below it. It holds
//! no container state of its own beyond a request's life: containers live under their monitors, so they
//! keep running, logging and recording their exits when the server stops or is killed.
//!
//! Rooms:
//! - `server.rs`: listeners (unix socket permissions, loopback-only TCP) and the connection loop.
//! - `router.rs`: the `/v1.NN` prefix, dispatch to the area modules, common headers, deadlines.
//! - `http.rs`: bodies (size caps, strict JSON), query parameters and filters, streamed responses.
//! - `error.rs`: engine errors as docker's statuses and `{"message": ...}` bodies.
//! - `ctx.rs`: what handlers share (the engine, attaches waiting for a start, `execs.rs` exec instances).
//! - `hijack.rs`: attach and exec connections taken over from HTTP and relayed to a monitor session;
//!   `stdcopy.rs` docker's framing of their output.
//! - `routes/`: one module per API area. JSON shapes are `bollard_stubs::models`.

mod ctx;
mod error;
mod execs;
#[cfg(fuzzing)]
pub mod fuzzing;
mod hijack;
mod http;
mod router;
mod routes;
mod server;
mod stdcopy;

pub use router::API_VERSION;
pub use server::{serve, ServeConfig, ServeError, DEFAULT_SOCKET};
