//! One module per area of the Engine API, each with a `route` function that matches its endpoints.

pub mod archive;
pub mod attach;
pub(crate) mod container_create;
pub(crate) mod container_filters;
mod container_json;
mod container_stats;
pub mod containers;
pub mod events;
pub mod exec;
pub mod images;
pub mod info;
pub mod logs;
pub mod networks;
pub mod pull_progress;
pub mod system;
pub mod transfer;
pub mod volumes;
