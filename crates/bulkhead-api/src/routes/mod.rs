//! One module per area of the Engine API, each with a `route` function that matches its endpoints.

pub mod archive;
pub mod attach;
pub mod exec;
pub mod logs;
pub mod system;
