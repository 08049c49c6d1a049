//! Connectors: one folder per system. Being written.
