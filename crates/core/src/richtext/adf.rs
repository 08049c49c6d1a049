//! Atlassian Document Format (Jira Cloud REST v3) to and from [`Doc`].
//!
//! Reading is forgiving: ADF has many node types Tandem does not model (panels, tables,
//! media, expands, status lozenges, ...). They degrade to their text or their inner blocks
//! rather than failing, because losing a panel's border is better than refusing to sync a
//! description. Writing produces only nodes Jira accepts in each position.

use super::{Block, Doc, Inline, Marks, RichTextError, normalize_blocks};
use serde_json::{Map, Value, json};

/// Nesting deeper than this is flattened to text; protects the stack from hostile input
/// built in code (parsed JSON is already limited by serde_json).
const MAX_DEPTH: usize = 48;

const INLINE_TYPES: &[&str] = &[
    "text",
    "hardBreak",
    "mention",
    "emoji",
    "inlineCard",
    "date",
    "status",
    "placeholder",
    "inlineExtension",
    "mediaInline",
];

fn node_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn content(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("attrs").and_then(|a| a.get(name))
}

fn attr_str<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    attr(node, name).and_then(Value::as_str)
}

impl Doc {
    /// Reads an ADF document. `null` is an empty document; a bare string is read as plain text
    /// (some endpoints answer v2-style); any object node is read as if wrapped in a doc.
    pub fn from_adf(value: &Value) -> Result<Doc, RichTextError> {
        let blocks = match value {
            Value::Null => Vec::new(),
            Value::String(s) => return Ok(Doc::from_plain(s)),
            Value::Array(nodes) => blocks_of(nodes, 0),
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("doc") => blocks_of(content(value), 0),
                Some(_) => blocks_of(std::slice::from_ref(value), 0),
                None => {
                    return Err(RichTextError::NotAdf(
                        "an object without a `type`".to_string(),
                    ));
                }
            },
            Value::Bool(_) | Value::Number(_) => {
                return Err(RichTextError::NotAdf(format!(
                    "expected a document object, got `{value}`"
                )));
            }
        };
        Ok(Doc { blocks })
    }

    /// Writes an ADF document (`{"type":"doc","version":1,"content":[...]}`).
    pub fn to_adf(&self) -> Value {
        let blocks = normalize_blocks(&self.blocks);
        json!({
            "type": "doc",
            "version": 1,
            "content": blocks.iter().map(|b| block_to_adf(b, false)).collect::<Vec<_>>(),
        })
    }
}

fn blocks_of(nodes: &[Value], depth: usize) -> Vec<Block> {
    let mut out = Vec::new();
    // Inline nodes found where blocks belong are gathered into one paragraph.
    let mut loose: Vec<Inline> = Vec::new();
    let flush = |loose: &mut Vec<Inline>, out: &mut Vec<Block>| {
        if !loose.is_empty() {
            out.push(Block::Paragraph {
                content: std::mem::take(loose),
            });
        }
    };
    for node in nodes {
        let ty = node_type(node);
        if INLINE_TYPES.contains(&ty) {
            loose.extend(inlines_of(std::slice::from_ref(node), Marks::NONE));
            continue;
        }
        flush(&mut loose, &mut out);
        if depth >= MAX_DEPTH {
            push_text(&mut out, text_of(node));
            continue;
        }
        let d = depth + 1;
        match ty {
            "paragraph" => out.push(Block::Paragraph {
                content: inlines_of(content(node), Marks::NONE),
            }),
            "heading" => out.push(Block::Heading {
                level: attr(node, "level")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 6) as u8,
                content: inlines_of(content(node), Marks::NONE),
            }),
            "bulletList" | "orderedList" => {
                let items = content(node)
                    .iter()
                    .map(|item| {
                        if node_type(item) == "listItem" {
                            blocks_of(content(item), d)
                        } else {
                            blocks_of(std::slice::from_ref(item), d)
                        }
                    })
                    .collect();
                out.push(if ty == "bulletList" {
                    Block::BulletList { items }
                } else {
                    Block::OrderedList { items }
                });
            }
            // Tasks and decisions read as bullet lists of their text.
            "taskList" | "decisionList" => out.push(Block::BulletList {
                items: content(node)
                    .iter()
                    .map(|item| blocks_of(std::slice::from_ref(item), d))
                    .collect(),
            }),
            "taskItem" | "decisionItem" => out.push(Block::Paragraph {
                content: inlines_of(content(node), Marks::NONE),
            }),
            "codeBlock" => out.push(Block::CodeBlock {
                language: attr_str(node, "language").map(str::to_string),
                text: content(node).iter().map(text_of).collect(),
            }),
            "blockquote" => out.push(Block::Quote {
                blocks: blocks_of(content(node), d),
            }),
            "rule" => out.push(Block::Rule),
            // Tables: one paragraph per row, cells separated by " | ".
            "table" => {
                for row in content(node) {
                    let cells: Vec<String> = content(row)
                        .iter()
                        .map(|cell| text_of(cell).trim().to_string())
                        .collect();
                    push_text(&mut out, cells.join(" | "));
                }
            }
            "expand" | "nestedExpand" => {
                if let Some(title) = attr_str(node, "title") {
                    push_text(&mut out, title.to_string());
                }
                out.extend(blocks_of(content(node), d));
            }
            "media" | "mediaSingle" | "mediaGroup" | "embedCard" => {
                if let Some(url) = attr_str(node, "url") {
                    out.push(Block::Paragraph {
                        content: vec![link_text(url)],
                    });
                }
            }
            "blockCard" => {
                if let Some(url) = attr_str(node, "url") {
                    out.push(Block::Paragraph {
                        content: vec![link_text(url)],
                    });
                }
            }
            // panel, layoutSection, layoutColumn, bodiedExtension, listItem out of a list, a
            // nested doc, and anything unknown: keep the inner blocks, or failing that the text.
            _ => {
                let inner = content(node);
                if inner.is_empty() {
                    push_text(&mut out, text_of(node));
                } else {
                    out.extend(blocks_of(inner, d));
                }
            }
        }
    }
    flush(&mut loose, &mut out);
    out
}

fn push_text(out: &mut Vec<Block>, text: String) {
    if !text.trim().is_empty() {
        out.push(Block::Paragraph {
            content: vec![Inline::text(text)],
        });
    }
}

fn link_text(url: &str) -> Inline {
    Inline::Text {
        text: url.to_string(),
        marks: Marks::NONE,
        link: Some(url.to_string()),
    }
}

fn inlines_of(nodes: &[Value], outer: Marks) -> Vec<Inline> {
    let mut out = Vec::new();
    for node in nodes {
        match node_type(node) {
            "text" => {
                let text = node.get("text").and_then(Value::as_str).unwrap_or("");
                let mut marks = outer;
                let mut link = None;
                for mark in node
                    .get("marks")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    match node_type(mark) {
                        "strong" => marks.bold = true,
                        "em" => marks.italic = true,
                        "code" => marks.code = true,
                        "strike" => marks.strike = true,
                        "link" => link = attr_str(mark, "href").map(str::to_string),
                        // underline, textColor, subsup, backgroundColor: not modelled.
                        _ => {}
                    }
                }
                out.push(Inline::Text {
                    text: text.to_string(),
                    marks,
                    link,
                });
            }
            "hardBreak" => out.push(Inline::HardBreak),
            "mention" => {
                let id = attr_str(node, "id").unwrap_or("").to_string();
                let text = attr_str(node, "text").unwrap_or("").to_string();
                if id.is_empty() {
                    out.push(Inline::text(text));
                } else {
                    out.push(Inline::Mention { id, text });
                }
            }
            "emoji" => {
                let t = attr_str(node, "text")
                    .or_else(|| attr_str(node, "shortName"))
                    .unwrap_or("");
                out.push(Inline::styled(t, outer));
            }
            "inlineCard" => {
                if let Some(url) = attr_str(node, "url") {
                    out.push(link_text(url));
                }
            }
            "date" => {
                // A millisecond timestamp, as a string or number.
                let ms = attr(node, "timestamp").and_then(|t| match t {
                    Value::String(s) => s.parse::<i64>().ok(),
                    other => other.as_i64(),
                });
                if let Some(d) = ms.and_then(chrono::DateTime::from_timestamp_millis) {
                    out.push(Inline::styled(d.format("%Y-%m-%d").to_string(), outer));
                }
            }
            _ => {
                // status, placeholder, or a block where inlines belong: its text.
                let t = text_of(node);
                if !t.is_empty() {
                    out.push(Inline::styled(t, outer));
                }
            }
        }
    }
    out
}

/// All the text under a node, blocks separated by newlines. Iterative, so any depth is fine.
fn text_of(node: &Value) -> String {
    let mut out = String::new();
    // (node, whether a newline goes before it)
    let mut stack: Vec<(&Value, bool)> = vec![(node, false)];
    while let Some((n, newline)) = stack.pop() {
        if newline {
            out.push('\n');
        }
        if let Some(t) = n.get("text").and_then(Value::as_str) {
            out.push_str(t);
            continue;
        }
        if node_type(n) == "hardBreak" {
            out.push('\n');
            continue;
        }
        let inner = content(n);
        if inner.is_empty() {
            out.push_str(attr_str(n, "text").unwrap_or(""));
            continue;
        }
        for (i, child) in inner.iter().enumerate().rev() {
            stack.push((child, i > 0 && !INLINE_TYPES.contains(&node_type(child))));
        }
    }
    out
}

fn inlines_to_adf(content: &[Inline]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|i| match i {
            Inline::Text { text, .. } if text.is_empty() => None,
            Inline::Text { text, marks, link } => {
                let mut ms = Vec::new();
                // ADF allows `code` only together with `link`.
                if marks.code {
                    ms.push(json!({"type": "code"}));
                } else {
                    if marks.bold {
                        ms.push(json!({"type": "strong"}));
                    }
                    if marks.italic {
                        ms.push(json!({"type": "em"}));
                    }
                    if marks.strike {
                        ms.push(json!({"type": "strike"}));
                    }
                }
                if let Some(href) = link {
                    ms.push(json!({"type": "link", "attrs": {"href": href}}));
                }
                let mut o = Map::new();
                o.insert("type".into(), json!("text"));
                o.insert("text".into(), json!(text));
                if !ms.is_empty() {
                    o.insert("marks".into(), Value::Array(ms));
                }
                Some(Value::Object(o))
            }
            Inline::HardBreak => Some(json!({"type": "hardBreak"})),
            Inline::Mention { id, text } => {
                Some(json!({"type": "mention", "attrs": {"id": id, "text": text}}))
            }
        })
        .collect()
}

/// `restricted`: inside a list item or quote, where ADF accepts only paragraphs, lists and
/// code blocks; other blocks are written as paragraphs.
fn block_to_adf(b: &Block, restricted: bool) -> Value {
    match b {
        Block::Paragraph { content } => {
            json!({"type": "paragraph", "content": inlines_to_adf(content)})
        }
        Block::Heading { content, .. } if restricted => {
            json!({"type": "paragraph", "content": inlines_to_adf(content)})
        }
        Block::Heading { level, content } => json!({
            "type": "heading",
            "attrs": {"level": level},
            "content": inlines_to_adf(content),
        }),
        Block::BulletList { items } | Block::OrderedList { items } => {
            let items: Vec<Value> = items
                .iter()
                .map(|item| {
                    let mut blocks: Vec<Value> =
                        item.iter().map(|b| block_to_adf(b, true)).collect();
                    // A list item must open with a paragraph (or a nested list).
                    if blocks.is_empty() {
                        blocks.push(json!({"type": "paragraph", "content": []}));
                    }
                    json!({"type": "listItem", "content": blocks})
                })
                .collect();
            if matches!(b, Block::BulletList { .. }) {
                json!({"type": "bulletList", "content": items})
            } else {
                json!({"type": "orderedList", "attrs": {"order": 1}, "content": items})
            }
        }
        Block::CodeBlock { language, text } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("codeBlock"));
            if let Some(l) = language {
                o.insert("attrs".into(), json!({"language": l}));
            }
            let content = if text.is_empty() {
                vec![]
            } else {
                vec![json!({"type": "text", "text": text})]
            };
            o.insert("content".into(), Value::Array(content));
            Value::Object(o)
        }
        Block::Quote { blocks } if restricted => {
            // No quote inside a list item: keep the text as paragraphs.
            let text = super::plain_blocks(blocks, "");
            json!({"type": "paragraph", "content": inlines_to_adf(&[Inline::text(text)])})
        }
        Block::Quote { blocks } => json!({
            "type": "blockquote",
            "content": blocks.iter().map(|b| block_to_adf(b, true)).collect::<Vec<_>>(),
        }),
        Block::Rule if restricted => json!({"type": "paragraph", "content": []}),
        Block::Rule => json!({"type": "rule"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(adf: Value) {
        let doc = Doc::from_adf(&adf).unwrap();
        assert_eq!(doc.to_adf(), adf, "{doc:#?}");
    }

    #[test]
    fn supported_subset_round_trips() {
        round_trip(json!({"type":"doc","version":1,"content":[
            {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Title"}]},
            {"type":"paragraph","content":[
                {"type":"text","text":"plain "},
                {"type":"text","text":"bold","marks":[{"type":"strong"}]},
                {"type":"text","text":" both","marks":[{"type":"strong"},{"type":"em"}]},
                {"type":"hardBreak"},
                {"type":"text","text":"gone","marks":[{"type":"strike"}]},
                {"type":"text","text":" "},
                {"type":"text","text":"x()","marks":[{"type":"code"}]},
                {"type":"text","text":" see "},
                {"type":"text","text":"site","marks":[{"type":"link","attrs":{"href":"https://e.com"}}]},
                {"type":"text","text":" "},
                {"type":"mention","attrs":{"id":"5b10ac","text":"@Jane"}}
            ]},
            {"type":"bulletList","content":[
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"one"}]}]},
                {"type":"listItem","content":[
                    {"type":"paragraph","content":[{"type":"text","text":"two"}]},
                    {"type":"orderedList","attrs":{"order":1},"content":[
                        {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"2a"}]}]}
                    ]}
                ]}
            ]},
            {"type":"codeBlock","attrs":{"language":"rust"},"content":[{"type":"text","text":"fn main() {}\n  x"}]},
            {"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"quoted"}]}]},
            {"type":"rule"},
            {"type":"codeBlock","content":[]}
        ]}));
    }

    #[test]
    fn unknown_nodes_degrade_to_text() {
        let adf = json!({"type":"doc","version":1,"content":[
            {"type":"panel","attrs":{"panelType":"info"},"content":[
                {"type":"paragraph","content":[{"type":"text","text":"in a panel","marks":[{"type":"underline"},{"type":"textColor","attrs":{"color":"#f00"}}]}]}
            ]},
            {"type":"table","content":[
                {"type":"tableRow","content":[
                    {"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"A"}]}]},
                    {"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"B"}]}]}
                ]}
            ]},
            {"type":"paragraph","content":[
                {"type":"status","attrs":{"text":"DONE","color":"green"}},
                {"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}},
                {"type":"inlineCard","attrs":{"url":"https://x.y"}},
                {"type":"date","attrs":{"timestamp":"1700000000000"}},
                {"type":"futureThing","content":[{"type":"text","text":"!"}]}
            ]},
            {"type":"mediaSingle","content":[{"type":"media","attrs":{"id":"1","type":"file"}}]},
            {"type":"mystery","attrs":{"text":"kept"}},
            {"type":"text","text":"loose"},
            {"type":"whatever"},
            "not even an object",
            42
        ]});
        let doc = Doc::from_adf(&adf).unwrap();
        assert_eq!(
            doc.to_plain(),
            "in a panel\n\nA | B\n\nDONE😄https://x.y2023-11-14!\n\nkept\n\nloose"
        );
    }

    #[test]
    fn odd_inputs() {
        assert!(Doc::from_adf(&Value::Null).unwrap().is_empty());
        assert_eq!(
            Doc::from_adf(&json!("a\n\nb")).unwrap(),
            Doc::paragraphs(["a", "b"])
        );
        assert!(Doc::from_adf(&json!(3)).is_err());
        assert!(Doc::from_adf(&json!({"content": []})).is_err());
        assert_eq!(
            Doc::from_adf(&json!({"type":"paragraph","content":[{"type":"text","text":"x"}]}))
                .unwrap(),
            Doc::paragraphs(["x"])
        );
        // Missing fields and wrong types never panic.
        let weird = json!({"type":"doc","content":[
            {"type":"heading","attrs":{"level":"big"}},
            {"type":"heading","attrs":{"level":99},"content":[{"type":"text","text":"h"}]},
            {"type":"text"},
            {"type":"mention","attrs":{}},
            {"type":"bulletList","content":[{"type":"paragraph","content":"nope"}]},
            {"type":"codeBlock","content":[{"type":"hardBreak"}]},
            {"type":"date","attrs":{"timestamp":"soon"}}
        ]});
        let doc = Doc::from_adf(&weird).unwrap();
        let _ = doc.to_adf();
        // Very deep nesting degrades instead of overflowing the stack.
        let mut deep = json!({"type":"text","text":"bottom"});
        for _ in 0..300 {
            deep = json!({"type":"blockquote","content":[deep]});
        }
        let doc = Doc::from_adf(&deep).unwrap();
        assert_eq!(doc.to_plain().trim_start_matches("> ").trim(), "bottom");
    }

    #[test]
    fn list_items_and_quotes_stay_valid_adf() {
        let doc = Doc {
            blocks: vec![Block::BulletList {
                items: vec![vec![
                    Block::Heading {
                        level: 1,
                        content: vec![Inline::text("h")],
                    },
                    Block::Rule,
                ]],
            }],
        };
        let adf = doc.to_adf();
        assert_eq!(
            adf["content"][0]["content"][0]["content"][0]["type"],
            json!("paragraph")
        );
        let styled = Doc {
            blocks: vec![Block::Paragraph {
                content: vec![Inline::styled(
                    "c",
                    Marks {
                        bold: true,
                        code: true,
                        ..Marks::NONE
                    },
                )],
            }],
        };
        assert_eq!(
            styled.to_adf()["content"][0]["content"][0]["marks"],
            json!([{"type":"code"}])
        );
    }
}
