//! Durable store. Being written.
