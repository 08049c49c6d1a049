//! Tandem: keeps a Jira site and another system in step, both ways, within seconds.
//!
//! The library behind the `tandem` binary. A change flows
//! `webhook / poll → server (verify, parse, 202) → store (durable queue) → worker (plan, write)`;
//! see `docs/ARCHITECTURE.md` for the whole picture.

pub mod app;
pub mod bench;
pub mod config;
pub mod connector;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod poller;
pub mod secret;
pub mod server;
pub mod store;
pub mod sync;
pub mod worker;
