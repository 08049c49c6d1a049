//! The generic REST/JSON connector (the seed external API by default). Being written.
