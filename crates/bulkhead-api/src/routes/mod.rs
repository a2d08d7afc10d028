//! One module per area of the Engine API, each with a `route` function that matches its endpoints.

pub mod events;
pub mod images;
pub mod info;
pub mod networks;
pub mod pull_progress;
pub mod system;
pub mod transfer;
pub mod volumes;
