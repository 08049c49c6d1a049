//! Tandem core.
