//! Shared helpers for the lpm integration tests.
