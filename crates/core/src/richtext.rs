//! Canonical rich text (placeholder: filled in with ADF and wiki conversions).

use serde::{Deserialize, Serialize};

/// A rich-text document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// A block of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum Block {
    Paragraph { content: Vec<Inline> },
}

/// A run of text inside a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "inline", rename_all = "snake_case")]
pub enum Inline {
    Text { text: String },
    HardBreak,
}
