//! Conversion between Atlassian Document Format (what REST v3 speaks) and Jira wiki markup
//! (what REST v2, Data Center, changelogs and webhooks speak), written independently of the
//! engine's converter (`tandem_core::richtext`) so the sandbox can act as a ground truth.
//!
//! The sandbox stores rich text as ADF and converts on the way out, like Jira. Covered
//! faithfully in both directions: paragraphs, hard breaks, `strong`/`em`/`strike`/`code`/
//! `underline` marks, links, mentions, bullet and ordered lists (nested), headings, code
//! blocks, block quotes and rules. Other ADF nodes (panels, tables, media, ...) degrade to
//! their inner blocks or their text.
//!
//! Wiki markup conventions, as Jira writes them:
//! - blocks are separated by a blank line; a hard break is a newline inside a paragraph and
//!   `\\` where a newline would end the construct (headings, list items, blank lines);
//! - marks use the constrained form (`*bold*`) where it reads back, and the unconstrained
//!   form (`{*}bold{*}`) inside words or around edge spaces;
//! - characters that would read as markup are escaped with a backslash: always
//!   `* _ { } [ ] |`, `- + ^ ~` where they could open or close a mark, and line-start
//!   constructs (`#` list markers, `h1.`, `bq.`) at the start of a line.
//!
//! Known limits, shared with real wiki markup: a literal backslash right before punctuation
//! reads back as an escape, code spans cannot hold `}}`, code blocks cannot hold `{code}`,
//! and a list item keeps only one paragraph (further ones join with a line break).
//!
//! Nothing here panics on input: unknown nodes degrade, and recursion is bounded.

use serde_json::{Map, Value, json};

/// Nesting deeper than this is flattened to text.
const MAX_DEPTH: usize = 64;

/// Whether `v` is an acceptable ADF document for a v3 write.
pub fn is_doc(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("doc")
        && v.get("content").is_some_and(Value::is_array)
}

fn ty(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn children(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn attr_str<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    node.get("attrs")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

const INLINE: &[&str] = &[
    "text",
    "hardBreak",
    "mention",
    "emoji",
    "inlineCard",
    "date",
    "status",
    "placeholder",
    "mediaInline",
    "inlineExtension",
];

// ---------------------------------------------------------------------------------------------
// Inline model shared by both directions
// ---------------------------------------------------------------------------------------------

/// Marks of a run. Order of emission in ADF: strong, em, underline, strike, code, link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    strong: bool,
    em: bool,
    underline: bool,
    strike: bool,
    code: bool,
}

impl Marks {
    fn any(self) -> bool {
        self.strong || self.em || self.underline || self.strike || self.code
    }
    /// The wiki marker of a mark character, if set.
    fn has(self, c: char) -> bool {
        match c {
            '*' => self.strong,
            '_' => self.em,
            '-' => self.strike,
            '+' => self.underline,
            _ => false,
        }
    }
    fn with(mut self, c: char) -> Marks {
        match c {
            '*' => self.strong = true,
            '_' => self.em = true,
            '-' => self.strike = true,
            '+' => self.underline = true,
            _ => {}
        }
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text {
        text: String,
        marks: Marks,
        href: Option<String>,
    },
    Break,
    Mention(String),
}

fn push_text(out: &mut Vec<Piece>, text: &str, marks: Marks, href: Option<&str>) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text {
        text: prev,
        marks: pm,
        href: ph,
    }) = out.last_mut()
        && *pm == marks
        && ph.as_deref() == href
    {
        prev.push_str(text);
        return;
    }
    out.push(Piece::Text {
        text: text.to_string(),
        marks,
        href: href.map(str::to_string),
    });
}

// ---------------------------------------------------------------------------------------------
// ADF → wiki
// ---------------------------------------------------------------------------------------------

/// ADF → wiki markup.
pub fn to_wiki(doc: &Value) -> String {
    if !doc.is_object() {
        return doc.as_str().map(escape_line).unwrap_or_default();
    }
    if ty(doc) == "doc" {
        blocks_wiki(children(doc), 0)
    } else {
        blocks_wiki(std::slice::from_ref(doc), 0)
    }
}

fn blocks_wiki(nodes: &[Value], depth: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut loose: Vec<&Value> = Vec::new();
    let flush = |loose: &mut Vec<&Value>, parts: &mut Vec<String>| {
        if !loose.is_empty() {
            let owned: Vec<Value> = loose.drain(..).cloned().collect();
            parts.push(paragraph_wiki(&owned));
        }
    };
    for node in nodes {
        if INLINE.contains(&ty(node)) {
            loose.push(node);
            continue;
        }
        flush(&mut loose, &mut parts);
        parts.push(block_wiki(node, depth));
    }
    flush(&mut loose, &mut parts);
    parts.retain(|p| !p.is_empty());
    parts.join("\n\n")
}

fn block_wiki(node: &Value, depth: usize) -> String {
    if depth >= MAX_DEPTH {
        return escape_line(&text_of(node, 0));
    }
    let d = depth + 1;
    match ty(node) {
        "paragraph" => paragraph_wiki(children(node)),
        "heading" => {
            let level = node
                .get("attrs")
                .and_then(|a| a.get("level"))
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 6);
            format!("h{level}. {}", inline_wiki(children(node), "\\\\"))
        }
        "bulletList" | "orderedList" => {
            let mut lines = Vec::new();
            list_wiki(node, "", &mut lines, d);
            lines.join("\n")
        }
        "codeBlock" => {
            let text: String = children(node).iter().map(|n| text_of(n, 0)).collect();
            match attr_str(node, "language").filter(|l| !l.is_empty() && !l.contains('}')) {
                Some(lang) => format!("{{code:{lang}}}\n{text}\n{{code}}"),
                None => format!("{{code}}\n{text}\n{{code}}"),
            }
        }
        "blockquote" => format!("{{quote}}\n{}\n{{quote}}", blocks_wiki(children(node), d)),
        "rule" => "----".to_string(),
        "media" | "mediaSingle" | "mediaGroup" => String::new(),
        // Tables: a paragraph per row, cells separated by " | " (escaped).
        "table" => children(node)
            .iter()
            .map(|row| {
                let cells: Vec<String> = children(row)
                    .iter()
                    .map(|c| text_of(c, 0).trim().to_string())
                    .collect();
                escape_line(&cells.join(" | "))
            })
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
        // panel, expand, layouts, a listItem out of place, unknown containers: their blocks.
        _ => {
            if children(node).is_empty() {
                escape_line(&text_of(node, 0))
            } else {
                blocks_wiki(children(node), d)
            }
        }
    }
}

fn list_wiki(node: &Value, prefix: &str, lines: &mut Vec<String>, depth: usize) {
    let marker = format!(
        "{prefix}{}",
        if ty(node) == "orderedList" { '#' } else { '*' }
    );
    for item in children(node) {
        let kids = if ty(item) == "listItem" {
            children(item)
        } else {
            std::slice::from_ref(item)
        };
        let mut opened = false;
        for kid in kids {
            match ty(kid) {
                "bulletList" | "orderedList" if depth < MAX_DEPTH => {
                    if !opened {
                        lines.push(format!("{marker} "));
                        opened = true;
                    }
                    list_wiki(kid, &marker, lines, depth + 1);
                }
                "paragraph" | "heading" => {
                    let text = inline_wiki(children(kid), "\\\\");
                    match lines.last_mut() {
                        Some(last) if opened => {
                            last.push_str("\\\\");
                            last.push_str(&text);
                        }
                        _ => lines.push(format!("{marker} {text}")),
                    }
                    opened = true;
                }
                t if INLINE.contains(&t) => {
                    let text = inline_wiki(std::slice::from_ref(kid), "\\\\");
                    match lines.last_mut() {
                        Some(last) if opened => last.push_str(&text),
                        _ => lines.push(format!("{marker} {text}")),
                    }
                    opened = true;
                }
                // Code, quotes and rules cannot live in a wiki list item: they follow it.
                _ => {
                    if !opened {
                        lines.push(format!("{marker} "));
                        opened = true;
                    }
                    lines.push(block_wiki(kid, depth + 1));
                }
            }
        }
        if !opened {
            lines.push(format!("{marker} "));
        }
    }
}

/// The pieces of inline ADF nodes, adjacent runs with equal marks merged.
fn pieces_of(nodes: &[Value]) -> Vec<Piece> {
    let mut out = Vec::new();
    for n in nodes {
        match ty(n) {
            "text" => {
                let text = n.get("text").and_then(Value::as_str).unwrap_or("");
                let mut marks = Marks::default();
                let mut href = None;
                if let Some(ms) = n.get("marks").and_then(Value::as_array) {
                    for m in ms {
                        match ty(m) {
                            "strong" => marks.strong = true,
                            "em" => marks.em = true,
                            "strike" => marks.strike = true,
                            "code" => marks.code = true,
                            "underline" => marks.underline = true,
                            "link" => href = attr_str(m, "href").filter(|h| !h.is_empty()),
                            _ => {}
                        }
                    }
                }
                // A newline inside a text node is a line break.
                for (i, line) in text.replace("\r\n", "\n").split('\n').enumerate() {
                    if i > 0 {
                        out.push(Piece::Break);
                    }
                    push_text(&mut out, line, marks, href);
                }
            }
            "hardBreak" => out.push(Piece::Break),
            "mention" => match attr_str(n, "id").filter(|id| !id.is_empty()) {
                Some(id) => out.push(Piece::Mention(id.to_string())),
                None => push_text(
                    &mut out,
                    attr_str(n, "text").unwrap_or(""),
                    Marks::default(),
                    None,
                ),
            },
            "inlineCard" => {
                if let Some(url) = attr_str(n, "url") {
                    push_text(&mut out, url, Marks::default(), Some(url));
                }
            }
            "emoji" => {
                let t = attr_str(n, "text")
                    .or(attr_str(n, "shortName"))
                    .unwrap_or("");
                push_text(&mut out, t, Marks::default(), None);
            }
            _ => push_text(&mut out, &text_of(n, 0), Marks::default(), None),
        }
    }
    out
}

/// A paragraph: hard breaks become newlines, or `\\` where a newline would end the
/// paragraph (a blank line, or a break at either edge).
fn paragraph_wiki(nodes: &[Value]) -> String {
    let pieces = pieces_of(nodes);
    let lines: Vec<String> = pieces
        .split(|p| *p == Piece::Break)
        .map(|line| guard_line(render_line(line)))
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            let prev_blank = lines[i - 1].trim().is_empty();
            if prev_blank || line.trim().is_empty() {
                out.push_str("\\\\");
            } else {
                out.push('\n');
            }
        }
        out.push_str(line);
    }
    out
}

/// Inline content on one wiki line: hard breaks written as `brk`.
fn inline_wiki(nodes: &[Value], brk: &str) -> String {
    pieces_of(nodes)
        .split(|p| *p == Piece::Break)
        .map(render_line)
        .collect::<Vec<_>>()
        .join(brk)
}

fn render_line(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for (i, p) in pieces.iter().enumerate() {
        match p {
            Piece::Break => {}
            Piece::Mention(id) => {
                out.push_str("[~accountid:");
                out.push_str(id);
                out.push(']');
            }
            Piece::Text { text, marks, href } => {
                let (before, after_word) = if href.is_some() {
                    // Inside a link the neighbours are its brackets.
                    (None, false)
                } else {
                    let after_word = matches!(
                        pieces.get(i + 1),
                        Some(Piece::Text { text, marks, href: None })
                            if !marks.any() && text.chars().next().is_some_and(char::is_alphanumeric)
                    );
                    (out.chars().last(), after_word)
                };
                let body = marked(text, *marks, before, after_word);
                match href {
                    Some(url)
                        if !marks.any()
                            && text == url
                            && (url.contains("://") || url.starts_with("mailto:"))
                            && !url.contains(['[', ']', '|', '\\', ' ']) =>
                    {
                        out.push('[');
                        out.push_str(url);
                        out.push(']');
                    }
                    Some(url) => {
                        out.push('[');
                        out.push_str(&body);
                        out.push('|');
                        out.push_str(&url.replace(']', "%5D").replace('|', "%7C"));
                        out.push(']');
                    }
                    None => out.push_str(&body),
                }
            }
        }
    }
    out
}

/// A run with its marks: code innermost, then strike, underline, italic, bold.
fn marked(text: &str, marks: Marks, before: Option<char>, after_word: bool) -> String {
    let mut s = if marks.code {
        format!("{{{{{text}}}}}")
    } else {
        escape(text)
    };
    let constrained = !text.starts_with(char::is_whitespace)
        && !text.ends_with(char::is_whitespace)
        && !before.is_some_and(char::is_alphanumeric)
        && !after_word;
    for c in ['-', '+', '_', '*'] {
        if marks.has(c) {
            s = if constrained {
                format!("{c}{s}{c}")
            } else {
                format!("{{{c}}}{s}{{{c}}}")
            };
        }
    }
    s
}

/// Escapes plain text: `* _ { } [ ] |` always, `- + ^ ~` where they could open a mark (after
/// a non-word character, before a non-space) or close one (after a non-space, before a
/// non-word character). Unknown neighbours at the run's edges count as the worst case.
fn escape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let special = match c {
            '*' | '_' | '{' | '}' | '[' | ']' | '|' => true,
            '-' | '+' | '^' | '~' => {
                let opens = !prev.is_some_and(char::is_alphanumeric)
                    && !next.is_some_and(char::is_whitespace);
                let closes = !prev.is_some_and(char::is_whitespace)
                    && !next.is_some_and(char::is_alphanumeric);
                opens || closes
            }
            _ => false,
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Plain text as one guarded wiki line.
fn escape_line(text: &str) -> String {
    text.split('\n')
        .map(|l| guard_line(escape(l)))
        .collect::<Vec<_>>()
        .join("\\\\")
}

/// Escape what would read as a block construct at the start of a line: a list marker
/// containing `#`, a heading (`h1.`) or a quote (`bq.`).
fn guard_line(line: String) -> String {
    let ws = line.len() - line.trim_start().len();
    let t = &line[ws..];
    let run = t.bytes().take_while(|b| *b == b'*' || *b == b'#').count();
    if run > 0
        && t.as_bytes().get(run) == Some(&b' ')
        && let Some(p) = t[..run].find('#')
    {
        let mut s = line.clone();
        s.insert(ws + p, '\\');
        return s;
    }
    if block_prefix(t).is_some() {
        let dot = t.find('.').unwrap_or(0);
        let mut s = line.clone();
        s.insert(ws + dot, '\\');
        return s;
    }
    line
}

/// `h1.`–`h6.` or `bq.` followed by a space or the end: (kind, rest).
fn block_prefix(t: &str) -> Option<(&str, &str)> {
    let b = t.as_bytes();
    let heading = b.len() >= 3 && b[0] == b'h' && (b'1'..=b'6').contains(&b[1]) && b[2] == b'.';
    if !heading && !t.starts_with("bq.") {
        return None;
    }
    let head = &t[..3];
    let rest = &t[3..];
    if rest.is_empty() {
        Some((head, rest))
    } else {
        rest.strip_prefix(' ').map(|r| (head, r))
    }
}

/// The text a node contains, for degraded nodes and plain text.
fn text_of(node: &Value, depth: usize) -> String {
    if depth >= MAX_DEPTH {
        return String::new();
    }
    match ty(node) {
        "text" => node
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        "hardBreak" => "\n".to_string(),
        "mention" => attr_str(node, "text")
            .map(str::to_string)
            .or_else(|| attr_str(node, "id").map(|id| format!("@{id}")))
            .unwrap_or_default(),
        "emoji" => attr_str(node, "text")
            .or(attr_str(node, "shortName"))
            .unwrap_or("")
            .to_string(),
        "inlineCard" | "blockCard" => attr_str(node, "url").unwrap_or("").to_string(),
        "status" | "date" | "placeholder" => attr_str(node, "text")
            .or(attr_str(node, "timestamp"))
            .unwrap_or("")
            .to_string(),
        t => {
            let inner: Vec<String> = children(node)
                .iter()
                .map(|c| text_of(c, depth + 1))
                .collect();
            if INLINE.contains(&t) || t == "paragraph" || t == "heading" || t == "codeBlock" {
                inner.concat()
            } else {
                inner
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }
}

/// Plain text of a document (block texts on their own lines), for JQL text search.
pub fn plain_text(doc: &Value) -> String {
    match doc {
        Value::String(s) => s.clone(),
        _ => text_of(doc, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// wiki → ADF
// ---------------------------------------------------------------------------------------------

/// Plain text → ADF, no markup read: blank lines split paragraphs, other newlines are hard
/// breaks. This is what a person typing into the editor produces.
pub fn from_plain(text: &str) -> Value {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut content = Vec::new();
    let mut para: Vec<Value> = Vec::new();
    let flush = |para: &mut Vec<Value>, content: &mut Vec<Value>| {
        if !para.is_empty() {
            content.push(json!({"type": "paragraph", "content": std::mem::take(para)}));
        }
    };
    for line in text.split('\n') {
        if line.trim().is_empty() {
            flush(&mut para, &mut content);
            continue;
        }
        if !para.is_empty() {
            para.push(json!({"type": "hardBreak"}));
        }
        para.push(json!({"type": "text", "text": line}));
    }
    flush(&mut para, &mut content);
    json!({"type": "doc", "version": 1, "content": content})
}

/// Wiki markup → ADF. Any input is accepted; what is not markup stays text.
pub fn from_wiki(text: &str) -> Value {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    json!({"type": "doc", "version": 1, "content": read_blocks(&text, 0)})
}

/// A list line: marker (`*`, `#*`, ...) and inline content.
type ListLine = (String, Vec<Piece>);

fn read_blocks(text: &str, depth: usize) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut para: Vec<Vec<Piece>> = Vec::new();
    let mut list: Vec<ListLine> = Vec::new();
    let flush = |blocks: &mut Vec<Value>, para: &mut Vec<Vec<Piece>>, list: &mut Vec<ListLine>| {
        if !para.is_empty() {
            let lines = std::mem::take(para);
            let mut pieces = Vec::new();
            for (i, l) in lines.into_iter().enumerate() {
                if i > 0 {
                    pieces.push(Piece::Break);
                }
                pieces.extend(l);
            }
            blocks.push(json!({"type": "paragraph", "content": pieces_to_adf(&pieces)}));
        }
        if !list.is_empty() {
            blocks.extend(build_lists(list, 1));
            list.clear();
        }
    };
    let mut pos = 0;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..end];
        let t = line.trim_start();
        if let Some((tag, lang, tag_len)) = open_tag(t) {
            flush(&mut blocks, &mut para, &mut list);
            let body_start = pos + (line.len() - t.len()) + tag_len;
            let close = format!("{{{tag}}}");
            let (body, after) = match text[body_start..].find(&close) {
                Some(i) => (
                    &text[body_start..body_start + i],
                    body_start + i + close.len(),
                ),
                None => (&text[body_start..], text.len()),
            };
            let body = body.strip_prefix('\n').unwrap_or(body);
            let body = body.strip_suffix('\n').unwrap_or(body);
            if tag == "quote" {
                let inner = if depth < 4 {
                    read_blocks(body, depth + 1)
                } else {
                    vec![
                        json!({"type": "paragraph", "content": pieces_to_adf(&[Piece::Text { text: body.to_string(), marks: Marks::default(), href: None }])}),
                    ]
                };
                blocks.push(json!({"type": "blockquote", "content": inner}));
            } else {
                let mut node = json!({"type": "codeBlock", "content": []});
                if let Some(l) = lang {
                    node["attrs"] = json!({ "language": l });
                }
                if !body.is_empty() {
                    node["content"] = json!([{"type": "text", "text": body}]);
                }
                blocks.push(node);
            }
            pos = if text[after..].starts_with('\n') {
                after + 1
            } else {
                after
            };
            continue;
        }
        pos = end + 1;
        if t.trim().is_empty() {
            flush(&mut blocks, &mut para, &mut list);
        } else if let Some((head, rest)) = block_prefix(t) {
            flush(&mut blocks, &mut para, &mut list);
            let content = pieces_to_adf(&read_inline(rest));
            if head == "bq." {
                blocks.push(json!({"type": "blockquote", "content": [{"type": "paragraph", "content": content}]}));
            } else {
                let level = head.as_bytes()[1] - b'0';
                blocks.push(
                    json!({"type": "heading", "attrs": {"level": level}, "content": content}),
                );
            }
        } else if t.trim_end() == "----" {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(json!({"type": "rule"}));
        } else if let Some((marker, rest)) = list_marker(t) {
            if !para.is_empty() {
                flush(&mut blocks, &mut para, &mut list);
            }
            list.push((marker, read_inline(rest)));
        } else {
            if !list.is_empty() {
                flush(&mut blocks, &mut para, &mut list);
            }
            para.push(read_inline(line));
        }
    }
    flush(&mut blocks, &mut para, &mut list);
    blocks
}

/// `{code}`, `{code:java}`, `{code:language=java|title=x}`, `{noformat}`, `{quote}` at the
/// start of a line: (tag, language, length of the opening tag).
fn open_tag(t: &str) -> Option<(&'static str, Option<String>, usize)> {
    for tag in ["code", "noformat", "quote"] {
        let Some(rest) = t.strip_prefix('{').and_then(|r| r.strip_prefix(tag)) else {
            continue;
        };
        if rest.starts_with('}') {
            return Some((tag, None, tag.len() + 2));
        }
        if let Some(params) = rest.strip_prefix(':')
            && let Some(end) = params.find('}')
        {
            let params = &params[..end];
            let lang = if tag == "code" {
                params
                    .split('|')
                    .enumerate()
                    .find_map(|(i, p)| match p.split_once('=') {
                        Some((k, v)) if k.trim() == "language" => Some(v.trim().to_string()),
                        None if i == 0 && !p.trim().is_empty() => Some(p.trim().to_string()),
                        _ => None,
                    })
            } else {
                None
            };
            return Some((tag, lang, tag.len() + 2 + end + 1));
        }
    }
    None
}

/// `* `, `#* `, `- ` at the start of a line: (marker, rest).
fn list_marker(t: &str) -> Option<(String, &str)> {
    if let Some(rest) = t.strip_prefix("- ") {
        return Some(("*".to_string(), rest));
    }
    let n = t.bytes().take_while(|b| *b == b'*' || *b == b'#').count();
    if n == 0 {
        return None;
    }
    let rest = t[n..].strip_prefix(' ')?;
    Some((t[..n].to_string(), rest))
}

/// Nested lists from list lines whose markers are at least `level` long.
fn build_lists(lines: &[ListLine], level: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let kind = lines[i]
            .0
            .as_bytes()
            .get(level - 1)
            .copied()
            .unwrap_or(b'*');
        let mut items: Vec<Vec<Value>> = Vec::new();
        while i < lines.len() {
            let (marker, content) = &lines[i];
            if marker.len() == level {
                if marker.as_bytes()[level - 1] != kind {
                    break;
                }
                let mut item = Vec::new();
                if !content.is_empty() {
                    item.push(json!({"type": "paragraph", "content": pieces_to_adf(content)}));
                }
                items.push(item);
                i += 1;
            } else {
                let start = i;
                while i < lines.len() && lines[i].0.len() > level {
                    i += 1;
                }
                let nested = build_lists(&lines[start..i], level + 1);
                match items.last_mut() {
                    Some(item) => item.extend(nested),
                    None => items.push(nested),
                }
            }
        }
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut item| {
                if item.is_empty() {
                    item.push(json!({"type": "paragraph", "content": []}));
                }
                json!({"type": "listItem", "content": item})
            })
            .collect();
        let ty = if kind == b'#' {
            "orderedList"
        } else {
            "bulletList"
        };
        out.push(json!({"type": ty, "content": items}));
    }
    out
}

fn read_inline(s: &str) -> Vec<Piece> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    inline_into(&chars, Marks::default(), None, &mut out);
    out
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Reads `chars` with `marks` and `href` applied. A mark cannot reopen inside itself and a
/// link cannot nest, which bounds the recursion at six levels.
fn inline_into(chars: &[char], marks: Marks, href: Option<&str>, out: &mut Vec<Piece>) {
    let mut buf = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        match c {
            '\\' => match next {
                Some('\\') => {
                    push_text(out, &std::mem::take(&mut buf), marks, href);
                    out.push(Piece::Break);
                    i += 2;
                }
                Some(n) if n.is_ascii_punctuation() => {
                    buf.push(n);
                    i += 2;
                }
                _ => {
                    buf.push('\\');
                    i += 1;
                }
            },
            '{' if next == Some('{') => match find(chars, i + 2, &['}', '}'], false) {
                Some(end) if end > i + 2 => {
                    push_text(out, &std::mem::take(&mut buf), marks, href);
                    let code: String = chars[i + 2..end].iter().collect();
                    let m = Marks {
                        code: true,
                        ..marks
                    };
                    push_text(out, &code, m, href);
                    i = end + 2;
                }
                _ => {
                    buf.push(c);
                    i += 1;
                }
            },
            '{' if next.is_some_and(|n| "*_-+".contains(n) && !marks.has(n))
                && chars.get(i + 2) == Some(&'}') =>
            {
                let mc = next.unwrap_or('*');
                match find(chars, i + 3, &['{', mc, '}'], true) {
                    Some(end) if end > i + 3 => {
                        push_text(out, &std::mem::take(&mut buf), marks, href);
                        inline_into(&chars[i + 3..end], marks.with(mc), href, out);
                        i = end + 3;
                    }
                    _ => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            '*' | '_' | '-' | '+'
                if !marks.has(c) && !is_word(prev) && next.is_some_and(|n| !n.is_whitespace()) =>
            {
                let close = find_closing(chars, i + 1, c);
                match close {
                    Some(end) => {
                        push_text(out, &std::mem::take(&mut buf), marks, href);
                        inline_into(&chars[i + 1..end], marks.with(c), href, out);
                        i = end + 1;
                    }
                    None => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            '[' if href.is_none() => {
                let Some(end) = find(chars, i + 1, &[']'], true) else {
                    buf.push(c);
                    i += 1;
                    continue;
                };
                let inner = &chars[i + 1..end];
                let inner_s: String = inner.iter().collect();
                // `[~user]` is a mention; `[~x|url]` is a link whose text starts with `~`.
                if let Some(user) = inner_s.strip_prefix('~')
                    && !user.contains('|')
                {
                    let id = user.strip_prefix("accountid:").unwrap_or(user).trim();
                    if !id.is_empty() {
                        push_text(out, &std::mem::take(&mut buf), marks, href);
                        out.push(Piece::Mention(id.to_string()));
                        i = end + 1;
                        continue;
                    }
                }
                // The last unescaped `|` separates text from the address.
                let mut bar = None;
                let mut j = 0;
                while j < inner.len() {
                    match inner[j] {
                        '\\' => j += 2,
                        '|' => {
                            bar = Some(j);
                            j += 1;
                        }
                        _ => j += 1,
                    }
                }
                let (text, url): (&[char], String) = match bar {
                    Some(b) => (&inner[..b], inner[b + 1..].iter().collect::<String>()),
                    None => (&[], inner_s.clone()),
                };
                let url = url.trim().to_string();
                let is_url = url.contains("://") || url.starts_with("mailto:");
                if url.is_empty() || (bar.is_none() && !is_url) {
                    // `[#anchor]`, `[^file]`, `[]`: not a link; read on as text.
                    buf.push(c);
                    i += 1;
                    continue;
                }
                push_text(out, &std::mem::take(&mut buf), marks, href);
                if text.is_empty() {
                    push_text(out, &url, marks, Some(&url));
                } else {
                    inline_into(text, marks, Some(&url), out);
                }
                i = end + 1;
            }
            _ => {
                buf.push(c);
                i += 1;
            }
        }
    }
    push_text(out, &buf, marks, href);
}

/// Where the code span `{{…}}` starting at `j` ends (the index after it), if one does.
fn code_span_end(chars: &[char], j: usize) -> Option<usize> {
    if chars.get(j) == Some(&'{') && chars.get(j + 1) == Some(&'{') {
        find(chars, j + 2, &['}', '}'], false).map(|e| e + 2)
    } else {
        None
    }
}

/// The closing `c` of a constrained mark whose content starts at `from`: after a non-space,
/// before a non-word character, not escaped and not inside a code span.
fn find_closing(chars: &[char], from: usize, c: char) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == '\\' {
            j += 2;
            continue;
        }
        if let Some(end) = code_span_end(chars, j) {
            j = end;
            continue;
        }
        if j > from
            && chars[j] == c
            && !chars[j - 1].is_whitespace()
            && !is_word(chars.get(j + 1).copied())
        {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// The next occurrence of `seq` at or after `from`; with `skip_escaped`, characters after a
/// backslash and code spans are not matched.
fn find(chars: &[char], from: usize, seq: &[char], skip_escaped: bool) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j..].starts_with(seq) {
            return Some(j);
        }
        if skip_escaped && let Some(end) = code_span_end(chars, j) {
            j = end;
            continue;
        }
        j += if skip_escaped && chars[j] == '\\' {
            2
        } else {
            1
        };
    }
    None
}

fn pieces_to_adf(pieces: &[Piece]) -> Vec<Value> {
    let mut merged: Vec<Piece> = Vec::new();
    for p in pieces {
        match p {
            Piece::Text { text, marks, href } => {
                push_text(&mut merged, text, *marks, href.as_deref())
            }
            other => merged.push(other.clone()),
        }
    }
    merged
        .into_iter()
        .map(|p| match p {
            Piece::Break => json!({"type": "hardBreak"}),
            Piece::Mention(id) => json!({"type": "mention", "attrs": {"id": id}}),
            Piece::Text { text, marks, href } => {
                let mut node = Map::new();
                node.insert("type".into(), json!("text"));
                node.insert("text".into(), json!(text));
                let mut ms = Vec::new();
                for (on, name) in [
                    (marks.strong, "strong"),
                    (marks.em, "em"),
                    (marks.underline, "underline"),
                    (marks.strike, "strike"),
                    (marks.code, "code"),
                ] {
                    if on {
                        ms.push(json!({"type": name}));
                    }
                }
                if let Some(h) = href {
                    ms.push(json!({"type": "link", "attrs": {"href": h}}));
                }
                if !ms.is_empty() {
                    node.insert("marks".into(), Value::Array(ms));
                }
                Value::Object(node)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// ADF → HTML (renderedFields)
// ---------------------------------------------------------------------------------------------

/// ADF → the HTML Jira puts in `renderedFields`.
pub fn to_html(doc: &Value) -> String {
    let mut out = String::new();
    html_blocks(children(doc), &mut out, 0);
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_blocks(nodes: &[Value], out: &mut String, depth: usize) {
    for n in nodes {
        if depth >= MAX_DEPTH {
            out.push_str(&html_escape(&text_of(n, 0)));
            continue;
        }
        let d = depth + 1;
        match ty(n) {
            "paragraph" => {
                out.push_str("<p>");
                html_inline(children(n), out);
                out.push_str("</p>");
            }
            "heading" => {
                let level = n
                    .get("attrs")
                    .and_then(|a| a.get("level"))
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 6);
                out.push_str(&format!("<h{level}>"));
                html_inline(children(n), out);
                out.push_str(&format!("</h{level}>"));
            }
            "bulletList" | "orderedList" => {
                let tag = if ty(n) == "bulletList" { "ul" } else { "ol" };
                out.push_str(&format!("<{tag}>"));
                for item in children(n) {
                    out.push_str("<li>");
                    html_blocks(children(item), out, d);
                    out.push_str("</li>");
                }
                out.push_str(&format!("</{tag}>"));
            }
            "codeBlock" => {
                out.push_str("<pre><code>");
                out.push_str(&html_escape(&text_of(n, 0)));
                out.push_str("</code></pre>");
            }
            "blockquote" => {
                out.push_str("<blockquote>");
                html_blocks(children(n), out, d);
                out.push_str("</blockquote>");
            }
            "rule" => out.push_str("<hr/>"),
            t if INLINE.contains(&t) => {
                out.push_str("<p>");
                html_inline(std::slice::from_ref(n), out);
                out.push_str("</p>");
            }
            _ => html_blocks(children(n), out, d),
        }
    }
}

fn html_inline(nodes: &[Value], out: &mut String) {
    for p in pieces_of(nodes) {
        match p {
            Piece::Break => out.push_str("<br/>"),
            Piece::Mention(id) => out.push_str(&format!(
                "<a href=\"#\" rel=\"{}\" class=\"user-hover\">@{}</a>",
                html_escape(&id),
                html_escape(&id)
            )),
            Piece::Text { text, marks, href } => {
                let mut s = html_escape(&text);
                for (on, tag) in [
                    (marks.code, "code"),
                    (marks.strike, "del"),
                    (marks.underline, "ins"),
                    (marks.em, "em"),
                    (marks.strong, "b"),
                ] {
                    if on {
                        s = format!("<{tag}>{s}</{tag}>");
                    }
                }
                if let Some(h) = href {
                    s = format!(
                        "<a href=\"{}\" class=\"external-link\">{s}</a>",
                        html_escape(&h)
                    );
                }
                out.push_str(&s);
            }
        }
    }
}

#[cfg(test)]
mod tests;
