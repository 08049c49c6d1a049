//! Canonical rich text, and its conversions to and from plain text (here), ADF (`adf`) and
//! Jira wiki markup (`wiki`).
//!
//! Jira Cloud speaks ADF (JSON), Data Center and webhooks speak wiki markup, other systems
//! plain text. All of them meet in [`Doc`]. Equality on `Doc` is *semantic*: two
//! documents that normalise to the same blocks (adjacent runs with the same marks merged,
//! empty paragraphs dropped, edges trimmed) are equal, so a description that went out as ADF
//! and came back as wiki markup is recognised as unchanged.

use serde::{Deserialize, Serialize};

mod adf;
mod wiki;

/// A rich-text document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

/// A block of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum Block {
    Paragraph {
        content: Vec<Inline>,
    },
    Heading {
        /// 1 to 6.
        level: u8,
        content: Vec<Inline>,
    },
    /// Each item is a sequence of blocks (usually a paragraph, maybe a nested list).
    BulletList {
        items: Vec<Vec<Block>>,
    },
    OrderedList {
        items: Vec<Vec<Block>>,
    },
    CodeBlock {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        text: String,
    },
    Quote {
        blocks: Vec<Block>,
    },
    Rule,
}

/// Text styling of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Marks {
    #[serde(default, skip_serializing_if = "is_false")]
    pub bold: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub italic: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub code: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub strike: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Marks {
    pub const NONE: Marks = Marks {
        bold: false,
        italic: false,
        code: false,
        strike: false,
    };
}

/// A run of text inside a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "inline", rename_all = "snake_case")]
pub enum Inline {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "is_default_marks")]
        marks: Marks,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    HardBreak,
    /// A person: `id` is the side's user id (Cloud account id, DC user name); `text` the
    /// display form (`@Jane`), possibly empty.
    Mention {
        id: String,
        #[serde(default)]
        text: String,
    },
}

const CODE: Marks = Marks {
    code: true,
    ..Marks::NONE
};

fn is_default_marks(m: &Marks) -> bool {
    *m == Marks::NONE
}

impl Inline {
    /// Unstyled text.
    pub fn text(s: impl Into<String>) -> Inline {
        Inline::Text {
            text: s.into(),
            marks: Marks::NONE,
            link: None,
        }
    }

    /// Styled text.
    pub fn styled(s: impl Into<String>, marks: Marks) -> Inline {
        Inline::Text {
            text: s.into(),
            marks,
            link: None,
        }
    }

    /// The text a person would read.
    pub fn plain(&self) -> String {
        match self {
            Inline::Text { text, .. } => text.clone(),
            Inline::HardBreak => "\n".to_string(),
            Inline::Mention { id, text } => {
                if text.is_empty() {
                    format!("@{id}")
                } else {
                    text.clone()
                }
            }
        }
    }
}

impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        self.normalized().blocks == other.normalized().blocks
    }
}

/// Errors reading rich text from a structured source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RichTextError {
    #[error("not an ADF document: {0}")]
    NotAdf(String),
}

impl Doc {
    /// A document of one paragraph per item.
    pub fn paragraphs<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Doc {
        Doc {
            blocks: texts
                .into_iter()
                .map(|t| Block::Paragraph {
                    content: vec![Inline::text(t)],
                })
                .collect(),
        }
    }

    /// True when the document has no content once normalised.
    pub fn is_empty(&self) -> bool {
        self.normalized().blocks.is_empty()
    }

    /// The canonical form: adjacent runs with the same marks and link merged, empty runs,
    /// paragraphs, headings, list items, lists and quotes dropped, leading/trailing
    /// whitespace and hard breaks of paragraphs and headings trimmed, heading levels clamped.
    pub fn normalized(&self) -> Doc {
        Doc {
            blocks: normalize_blocks(&self.blocks),
        }
    }

    /// Reads plain text: blank lines separate paragraphs, single newlines are hard breaks.
    pub fn from_plain(text: &str) -> Doc {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut blocks = Vec::new();
        let mut lines: Vec<&str> = Vec::new();
        let mut flush = |lines: &mut Vec<&str>| {
            if lines.is_empty() {
                return;
            }
            let mut content = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    content.push(Inline::HardBreak);
                }
                content.push(Inline::text(*l));
            }
            blocks.push(Block::Paragraph { content });
            lines.clear();
        };
        for line in text.split('\n') {
            if line.trim().is_empty() {
                flush(&mut lines);
            } else {
                lines.push(line);
            }
        }
        flush(&mut lines);
        Doc { blocks }.normalized()
    }

    /// Writes plain text: blocks separated by blank lines, lists as `- ` / `1. ` lines,
    /// quotes prefixed with `> `, code as is.
    pub fn to_plain(&self) -> String {
        let blocks = normalize_blocks(&self.blocks);
        plain_blocks(&blocks, "")
    }
}

fn plain_inlines(content: &[Inline]) -> String {
    content.iter().map(Inline::plain).collect()
}

fn plain_blocks(blocks: &[Block], indent: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for b in blocks {
        let text = match b {
            Block::Paragraph { content } | Block::Heading { content, .. } => plain_inlines(content),
            Block::BulletList { items } | Block::OrderedList { items } => {
                let ordered = matches!(b, Block::OrderedList { .. });
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let marker = if ordered {
                        format!("{}. ", i + 1)
                    } else {
                        "- ".to_string()
                    };
                    let inner_indent = format!("{indent}{}", " ".repeat(marker.len()));
                    let body = plain_blocks(item, &inner_indent);
                    // Items' own paragraphs sit on consecutive lines, not blank-separated.
                    let body = body.replace("\n\n", "\n");
                    out.push(format!("{marker}{}", body.trim_start()));
                }
                out.join(&format!("\n{indent}"))
            }
            Block::CodeBlock { text, .. } => text.clone(),
            Block::Quote { blocks } => plain_blocks(blocks, "")
                .lines()
                .map(|l| format!("> {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Block::Rule => "---".to_string(),
        };
        parts.push(text.replace('\n', &format!("\n{indent}")));
    }
    parts.join(&format!("\n\n{indent}"))
}

pub(crate) fn normalize_blocks(blocks: &[Block]) -> Vec<Block> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b {
            Block::Paragraph { content } => {
                let content = normalize_inlines(content);
                if !content.is_empty() {
                    out.push(Block::Paragraph { content });
                }
            }
            Block::Heading { level, content } => {
                let content = normalize_inlines(content);
                if !content.is_empty() {
                    out.push(Block::Heading {
                        level: (*level).clamp(1, 6),
                        content,
                    });
                }
            }
            Block::BulletList { items } | Block::OrderedList { items } => {
                let items: Vec<Vec<Block>> = items
                    .iter()
                    .map(|i| normalize_blocks(i))
                    .filter(|i| !i.is_empty())
                    .collect();
                if !items.is_empty() {
                    out.push(if matches!(b, Block::BulletList { .. }) {
                        Block::BulletList { items }
                    } else {
                        Block::OrderedList { items }
                    });
                }
            }
            Block::CodeBlock { language, text } => {
                let language = language
                    .as_deref()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string);
                // Trailing newlines differ between sources and carry nothing.
                let text = text
                    .replace("\r\n", "\n")
                    .trim_end_matches('\n')
                    .to_string();
                out.push(Block::CodeBlock { language, text });
            }
            Block::Quote { blocks } => {
                let blocks = normalize_blocks(blocks);
                if !blocks.is_empty() {
                    out.push(Block::Quote { blocks });
                }
            }
            Block::Rule => out.push(Block::Rule),
        }
    }
    out
}

/// Appends a run, merging it into the previous one when marks and link agree.
fn push_merged(out: &mut Vec<Inline>, i: Inline) {
    if let Inline::Text { text, marks, link } = &i {
        if text.is_empty() {
            return;
        }
        if let Some(Inline::Text {
            text: prev,
            marks: pm,
            link: pl,
        }) = out.last_mut()
            && pm == marks
            && pl == link
        {
            prev.push_str(text);
            return;
        }
    }
    out.push(i);
}

pub(crate) fn normalize_inlines(content: &[Inline]) -> Vec<Inline> {
    let mut out: Vec<Inline> = Vec::with_capacity(content.len());
    for i in content {
        // ADF cannot combine `code` with other styles, so neither does the canonical form.
        let code_only;
        let i = match i {
            Inline::Text { text, marks, link } if marks.code && *marks != CODE => {
                code_only = Inline::Text {
                    text: text.clone(),
                    marks: CODE,
                    link: link.clone(),
                };
                &code_only
            }
            other => other,
        };
        match i {
            // A newline inside a run is a line break, whichever way the source spelled it.
            Inline::Text { text, marks, link } if text.contains(['\n', '\r']) => {
                let text = text.replace("\r\n", "\n").replace('\r', "\n");
                for (n, part) in text.split('\n').enumerate() {
                    if n > 0 {
                        out.push(Inline::HardBreak);
                    }
                    push_merged(
                        &mut out,
                        Inline::Text {
                            text: part.to_string(),
                            marks: *marks,
                            link: link.clone(),
                        },
                    );
                }
            }
            other => push_merged(&mut out, other.clone()),
        }
    }
    // Trim the edges: leading/trailing whitespace and hard breaks carry no meaning and differ
    // between sources.
    loop {
        match out.first_mut() {
            Some(Inline::HardBreak) => {
                out.remove(0);
            }
            Some(Inline::Text { text, .. }) => {
                let t = text.trim_start();
                if t.is_empty() {
                    out.remove(0);
                } else {
                    if t.len() != text.len() {
                        *text = t.to_string();
                    }
                    break;
                }
            }
            _ => break,
        }
    }
    loop {
        match out.last_mut() {
            Some(Inline::HardBreak) => {
                out.pop();
            }
            Some(Inline::Text { text, .. }) => {
                let t = text.trim_end();
                if t.is_empty() {
                    out.pop();
                } else {
                    if t.len() != text.len() {
                        *text = t.to_string();
                    }
                    break;
                }
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_paragraphs_and_breaks() {
        let d = Doc::from_plain("a\nb\n\n\n  \nc\r\n");
        assert_eq!(
            d.normalized().blocks,
            vec![
                Block::Paragraph {
                    content: vec![Inline::text("a"), Inline::HardBreak, Inline::text("b")]
                },
                Block::Paragraph {
                    content: vec![Inline::text("c")]
                }
            ]
        );
        assert_eq!(d.to_plain(), "a\nb\n\nc");
        assert!(Doc::from_plain(" \n\n ").is_empty());
    }

    #[test]
    fn normalisation_makes_equal_content_equal() {
        let a = Doc {
            blocks: vec![
                Block::Paragraph { content: vec![] },
                Block::Paragraph {
                    content: vec![Inline::text(" he"), Inline::text("llo "), Inline::HardBreak],
                },
            ],
        };
        assert_eq!(a, Doc::paragraphs(["hello"]));
        assert_ne!(
            Doc::paragraphs(["hello"]),
            Doc {
                blocks: vec![Block::Paragraph {
                    content: vec![Inline::styled(
                        "hello",
                        Marks {
                            bold: true,
                            ..Marks::NONE
                        }
                    )]
                }]
            }
        );
    }

    #[test]
    fn plain_rendering_of_structure() {
        let d = Doc {
            blocks: vec![
                Block::Heading {
                    level: 9,
                    content: vec![Inline::text("Title")],
                },
                Block::BulletList {
                    items: vec![
                        vec![Block::Paragraph {
                            content: vec![Inline::text("one")],
                        }],
                        vec![
                            Block::Paragraph {
                                content: vec![Inline::text("two")],
                            },
                            Block::OrderedList {
                                items: vec![vec![Block::Paragraph {
                                    content: vec![Inline::text("inner")],
                                }]],
                            },
                        ],
                    ],
                },
                Block::Quote {
                    blocks: vec![Block::Paragraph {
                        content: vec![Inline::Mention {
                            id: "abc".into(),
                            text: String::new(),
                        }],
                    }],
                },
            ],
        };
        assert_eq!(d.to_plain(), "Title\n\n- one\n- two\n  1. inner\n\n> @abc");
    }
}
