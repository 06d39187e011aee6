//! lpm facade
