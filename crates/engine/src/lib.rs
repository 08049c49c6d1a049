//! Tandem's engine: keeps a Jira site and another system in step, both ways, within seconds.
//!
//! The library behind the `tandem` binary: configuration, connectors, store, server, worker,
//! poller and bulk sync. A change flows
//! `webhook / poll → server (verify, parse, 202) → store (durable queue) → worker (plan, write)`;
//! see `docs/ARCHITECTURE.md` for the whole picture. It knows nothing of the sandboxes, the
//! demo or the benchmark harness, which live in the `tandem` binary crate.

pub mod app;
pub mod clock;
pub mod config;
pub mod connector;
pub mod poller;
pub mod queueing;
pub mod secret;
pub mod server;
pub mod store;
pub mod sync;
pub mod users;
pub mod worker;
