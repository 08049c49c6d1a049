//! Configuration (`tandem.toml`). Being written.
