//! Conversion between Atlassian Document Format (what REST v3 speaks) and wiki markup (what
//! REST v2, Data Center and webhooks speak).
//!
//! The sandbox stores rich text as ADF and converts on the way out, like Jira. Only what a
//! sync engine round-trips is covered: paragraphs, text and hard breaks (other block nodes
//! contribute their text). Marks are dropped; that is enough to test mapping and is honest
//! about being a sandbox.

use serde_json::{Value, json};

/// Whether `v` is an acceptable ADF document for a v3 write.
pub fn is_doc(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("doc")
        && v.get("content").is_some_and(Value::is_array)
}

/// ADF → wiki markup: paragraphs separated by a blank line, hard breaks as newlines.
pub fn to_wiki(doc: &Value) -> String {
    let mut paragraphs = Vec::new();
    if let Some(blocks) = doc.get("content").and_then(Value::as_array) {
        for block in blocks {
            let mut text = String::new();
            inline_text(block, &mut text);
            paragraphs.push(text);
        }
    }
    paragraphs.join("\n\n")
}

fn inline_text(node: &Value, out: &mut String) {
    match node.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(t) = node.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
        Some("hardBreak") => out.push('\n'),
        _ => {
            if let Some(children) = node.get("content").and_then(Value::as_array) {
                for c in children {
                    inline_text(c, out);
                }
            }
        }
    }
}

/// Wiki markup (or plain text) → ADF: blank lines split paragraphs, single newlines become
/// hard breaks.
pub fn from_wiki(text: &str) -> Value {
    let normalized = text.replace("\r\n", "\n");
    let mut content = Vec::new();
    for para in normalized.split("\n\n") {
        if para.is_empty() {
            continue;
        }
        let mut inline = Vec::new();
        for (i, line) in para.split('\n').enumerate() {
            if i > 0 {
                inline.push(json!({"type": "hardBreak"}));
            }
            if !line.is_empty() {
                inline.push(json!({"type": "text", "text": line}));
            }
        }
        content.push(json!({"type": "paragraph", "content": inline}));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// Plain text of a document, for JQL text search.
pub fn plain_text(doc: &Value) -> String {
    to_wiki(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_paragraphs_and_breaks() {
        let wiki = "first line\nsecond line\n\nnext paragraph";
        let doc = from_wiki(wiki);
        assert!(is_doc(&doc));
        assert_eq!(to_wiki(&doc), wiki);
    }

    #[test]
    fn nested_nodes_contribute_text() {
        let doc = json!({"type":"doc","version":1,"content":[
            {"type":"bulletList","content":[{"type":"listItem","content":[
                {"type":"paragraph","content":[{"type":"text","text":"item","marks":[{"type":"strong"}]}]}]}]}]});
        assert_eq!(to_wiki(&doc), "item");
        assert!(!is_doc(&json!("text")));
    }
}
