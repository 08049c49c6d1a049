//! Tandem: keeps a Jira site and another system in step, both ways, within seconds.
//!
//! The library of the `tandem` binary: the engine (`tandem-engine`, re-exported here module
//! by module, so `tandem::worker` and `tandem_engine::worker` are the same thing) plus what
//! only the binary needs: the demo, the benchmark harness and the fuzz target bodies, which
//! run the engine against the sandboxes (`tandem-sandbox`).

pub use tandem_engine::{
    app, config, connector, poller, queueing, secret, server, store, sync, users, worker,
};

pub mod bench;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
