//! One module per area of the Engine API, each with a `route` function that matches its endpoints.

pub mod system;
