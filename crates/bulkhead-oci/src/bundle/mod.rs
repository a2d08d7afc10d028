//! An OCI bundle: its config.json read and checked, and translated into the engine's workload.
