//! Jira wiki markup (Data Center REST v2, and every webhook's `issue.fields`) to and from
//! [`Doc`].
//!
//! Supported: `*bold*`, `_italic_`, `-strike-`, `+underline+` (kept as plain text),
//! `{{code}}`, the unconstrained `{*}x{*}` forms, `[text|url]`, `[url]`, `[~user]` mentions,
//! `\\` line breaks, `\` escapes, `h1.`–`h6.`, `*`/`#`/`-` lists (nested `**`, `#*`, ...),
//! `{code[:lang]}`, `{noformat}`, `bq.`, `{quote}`, `----`. Anything else stays text. Any
//! input parses; nothing here can fail.

use super::{Block, Doc, Inline, Marks, normalize_blocks};

impl Doc {
    /// Reads wiki markup.
    pub fn from_wiki(text: &str) -> Doc {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        Doc {
            blocks: parse_blocks(&text),
        }
    }

    /// Writes wiki markup: blocks separated by blank lines, hard breaks as `\\`.
    /// Mentions are written `[~accountid:<id>]`, as Jira Cloud's wiki renderer takes them.
    pub fn to_wiki(&self) -> String {
        let blocks = normalize_blocks(&self.blocks);
        blocks_to_wiki(&blocks, Names::AccountId)
    }

    /// [`Doc::to_wiki`] for Jira Data Center, which names people by user name: mentions
    /// are written `[~<name>]`.
    pub fn to_wiki_by_name(&self) -> String {
        let blocks = normalize_blocks(&self.blocks);
        blocks_to_wiki(&blocks, Names::UserName)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A list line: its marker (`*`, `#*`, ...) and its content.
type ListLine = (String, Vec<Inline>);

fn parse_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut list: Vec<ListLine> = Vec::new();
    let mut pos = 0;

    fn flush(blocks: &mut Vec<Block>, para: &mut Vec<&str>, list: &mut Vec<ListLine>) {
        if !para.is_empty() {
            let mut content = Vec::new();
            for (i, l) in para.iter().enumerate() {
                if i > 0 {
                    content.push(Inline::HardBreak);
                }
                content.extend(parse_inline(l));
            }
            blocks.push(Block::Paragraph { content });
            para.clear();
        }
        if !list.is_empty() {
            blocks.extend(build_lists(list, 1));
            list.clear();
        }
    }

    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..line_end];
        let next = (line_end + 1).min(text.len());
        let t = line.trim_start();
        let indent = line.len() - t.len();

        // {code}/{noformat}/{quote} may span lines: find the closing tag in the rest of the text.
        if let Some((tag, params, tag_len)) = open_tag(t) {
            let body_start = pos + indent + tag_len;
            let close = format!("{{{tag}}}");
            let (body, after) = match text[body_start..].find(&close) {
                Some(i) => (
                    &text[body_start..body_start + i],
                    body_start + i + close.len(),
                ),
                // Unclosed: the rest of the text is the body.
                None => (&text[body_start..], text.len()),
            };
            flush(&mut blocks, &mut para, &mut list);
            let body_trimmed = body.strip_prefix('\n').unwrap_or(body);
            match tag {
                "quote" => blocks.push(Block::Quote {
                    blocks: parse_blocks(body_trimmed),
                }),
                _ => blocks.push(Block::CodeBlock {
                    language: if tag == "code" {
                        code_language(params)
                    } else {
                        None
                    },
                    text: body_trimmed
                        .strip_suffix('\n')
                        .unwrap_or(body_trimmed)
                        .to_string(),
                }),
            }
            // Text after the closing tag on its line is read as the start of a new line.
            pos = if text[after..].starts_with('\n') {
                after + 1
            } else {
                after
            };
            continue;
        }
        pos = next;

        if t.trim().is_empty() {
            flush(&mut blocks, &mut para, &mut list);
        } else if let Some((level, rest)) = heading(t) {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(Block::Heading {
                level,
                content: parse_inline(rest),
            });
        } else if let Some(rest) = t.strip_prefix("bq. ") {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(Block::Quote {
                blocks: vec![Block::Paragraph {
                    content: parse_inline(rest),
                }],
            });
        } else if t.trim_end() == "----" {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(Block::Rule);
        } else if let Some((marker, rest)) = list_marker(t) {
            // A paragraph and a list are never open together, so this closes just the paragraph.
            if !para.is_empty() {
                flush(&mut blocks, &mut para, &mut list);
            }
            list.push((marker.to_string(), parse_inline(rest)));
        } else {
            if !list.is_empty() {
                flush(&mut blocks, &mut para, &mut list);
            }
            para.push(line);
        }
    }
    flush(&mut blocks, &mut para, &mut list);
    blocks
}

/// `{code}`, `{code:java}`, `{noformat}`, `{quote}` at the start of a line: (tag, params,
/// length of the opening tag).
fn open_tag(t: &str) -> Option<(&'static str, &str, usize)> {
    for tag in ["code", "noformat", "quote"] {
        let Some(rest) = t.strip_prefix('{').and_then(|r| r.strip_prefix(tag)) else {
            continue;
        };
        if rest.starts_with('}') {
            return Some((tag, "", 1 + tag.len() + 1));
        }
        if let Some(params) = rest.strip_prefix(':')
            && let Some(end) = params.find('}')
        {
            return Some((tag, &params[..end], 1 + tag.len() + 1 + end + 1));
        }
    }
    None
}

/// `java` from `java` or `language=java|title=x`.
fn code_language(params: &str) -> Option<String> {
    let mut lang = None;
    for (i, p) in params.split('|').enumerate() {
        match p.split_once('=') {
            Some((k, v)) if k.trim() == "language" => lang = Some(v.trim().to_string()),
            None if i == 0 && !p.trim().is_empty() => lang = Some(p.trim().to_string()),
            _ => {}
        }
    }
    lang
}

fn heading(t: &str) -> Option<(u8, &str)> {
    let b = t.as_bytes();
    if b.len() >= 4 && b[0] == b'h' && (b'1'..=b'6').contains(&b[1]) && b[2] == b'.' && b[3] == b' '
    {
        Some((b[1] - b'0', &t[4..]))
    } else {
        None
    }
}

/// `* `, `## `, `#* `, `- ` at the start of a line.
fn list_marker(t: &str) -> Option<(&str, &str)> {
    if let Some(rest) = t.strip_prefix("- ") {
        return Some(("*", rest));
    }
    let n = t.bytes().take_while(|b| *b == b'*' || *b == b'#').count();
    if n == 0 {
        return None;
    }
    let rest = t[n..].strip_prefix(' ')?;
    Some((&t[..n], rest))
}

/// Builds nested lists from list lines whose markers are at least `level` long.
fn build_lists(lines: &[ListLine], level: usize) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        // The marker character at this level decides the list's kind; a change starts a new
        // list.
        let kind = lines[i]
            .0
            .as_bytes()
            .get(level - 1)
            .copied()
            .unwrap_or(b'*');
        let mut items: Vec<Vec<Block>> = Vec::new();
        while i < lines.len() {
            let (marker, content) = &lines[i];
            let m = marker.as_bytes();
            if m.len() == level {
                if m[level - 1] != kind {
                    break;
                }
                items.push(vec![Block::Paragraph {
                    content: content.clone(),
                }]);
                i += 1;
            } else {
                // Deeper lines belong to the current item (or to an empty one opened for them).
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
        out.push(if kind == b'#' {
            Block::OrderedList { items }
        } else {
            Block::BulletList { items }
        });
    }
    out
}

/// Marker characters that make marks, and the mark they make (`None`: underline etc., kept as
/// plain text).
fn mark_for(c: char) -> Option<Option<fn(&mut Marks)>> {
    Some(match c {
        '*' => Some(|m: &mut Marks| m.bold = true),
        '_' => Some(|m: &mut Marks| m.italic = true),
        '-' => Some(|m: &mut Marks| m.strike = true),
        '+' => None,
        _ => return None,
    })
}

fn parse_inline(s: &str) -> Vec<Inline> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    parse_inline_into(&chars, Marks::NONE, None, &[], &mut out);
    normalize_inlines_keep_edges(out)
}

fn normalize_inlines_keep_edges(v: Vec<Inline>) -> Vec<Inline> {
    // Merging here keeps the output tidy; trimming is left to Doc normalisation.
    let mut out: Vec<Inline> = Vec::with_capacity(v.len());
    for i in v {
        if let (
            Some(Inline::Text {
                text: prev,
                marks: pm,
                link: pl,
            }),
            Inline::Text { text, marks, link },
        ) = (out.last_mut(), &i)
            && pm == marks
            && pl == link
        {
            prev.push_str(text);
            continue;
        }
        out.push(i);
    }
    out
}

fn is_word(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

/// Parses `chars` with `marks` and `link` applied; `active` lists the marker characters
/// already open, which cannot open again inside themselves (this also bounds recursion).
fn parse_inline_into(
    chars: &[char],
    marks: Marks,
    link: Option<&str>,
    active: &[char],
    out: &mut Vec<Inline>,
) {
    let mut buf = String::new();
    let flush = |buf: &mut String, out: &mut Vec<Inline>| {
        if !buf.is_empty() {
            out.push(Inline::Text {
                text: std::mem::take(buf),
                marks,
                link: link.map(str::to_string),
            });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1);
        match c {
            '\\' => match next {
                Some('\\') => {
                    flush(&mut buf, out);
                    out.push(Inline::HardBreak);
                    i += 2;
                }
                Some(n) if n.is_ascii_punctuation() => {
                    buf.push(*n);
                    i += 2;
                }
                _ => {
                    buf.push('\\');
                    i += 1;
                }
            },
            '{' if next == Some(&'{') => {
                if let Some(end) = find_seq(chars, i + 2, &['}', '}']) {
                    flush(&mut buf, out);
                    let mut m = marks;
                    m.code = true;
                    out.push(Inline::Text {
                        text: chars[i + 2..end].iter().collect(),
                        marks: m,
                        link: link.map(str::to_string),
                    });
                    i = end + 2;
                } else {
                    buf.push(c);
                    i += 1;
                }
            }
            // Unconstrained marks: `{*}bold{*}` works inside words.
            '{' if next.is_some_and(|n| mark_for(*n).is_some() && !active.contains(n))
                && chars.get(i + 2) == Some(&'}') =>
            {
                let mc = chars[i + 1];
                match find_seq_unescaped(chars, i + 3, &['{', mc, '}']) {
                    Some(end) => {
                        flush(&mut buf, out);
                        nest(chars, i + 3, end, mc, marks, link, active, out);
                        i = end + 3;
                    }
                    None => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            c if mark_for(c).is_some()
                && !active.contains(&c)
                && !is_word(i.checked_sub(1).and_then(|p| chars.get(p)))
                && next.is_some_and(|n| !n.is_whitespace()) =>
            {
                match find_closing(chars, i + 1, c) {
                    Some(end) => {
                        flush(&mut buf, out);
                        nest(chars, i + 1, end, c, marks, link, active, out);
                        i = end + 1;
                    }
                    None => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            '[' if link.is_none() => match find_unescaped(chars, i + 1, ']') {
                Some(end) => {
                    let inner: String = chars[i + 1..end].iter().collect();
                    match bracket(&inner) {
                        Some(Bracket::Mention(id)) => {
                            flush(&mut buf, out);
                            out.push(Inline::Mention {
                                id,
                                text: String::new(),
                            });
                        }
                        Some(Bracket::Link { text, url }) => {
                            flush(&mut buf, out);
                            let text_chars: Vec<char> = text.chars().collect();
                            parse_inline_into(&text_chars, marks, Some(&url), active, out);
                        }
                        None => buf.push_str(&format!("[{inner}]")),
                    }
                    i = end + 1;
                }
                None => {
                    buf.push(c);
                    i += 1;
                }
            },
            c => {
                buf.push(c);
                i += 1;
            }
        }
    }
    flush(&mut buf, out);
}

#[allow(clippy::too_many_arguments)]
fn nest(
    chars: &[char],
    start: usize,
    end: usize,
    mc: char,
    marks: Marks,
    link: Option<&str>,
    active: &[char],
    out: &mut Vec<Inline>,
) {
    let mut m = marks;
    if let Some(Some(apply)) = mark_for(mc) {
        apply(&mut m);
    }
    let mut act = active.to_vec();
    act.push(mc);
    parse_inline_into(&chars[start..end], m, link, &act, out);
}

/// The closing `c` of a constrained mark opened just before `from`: preceded by a non-space,
/// not followed by a word character.
fn find_closing(chars: &[char], from: usize, c: char) -> Option<usize> {
    (from + 1..chars.len()).find(|&j| {
        chars[j] == c
            && !chars[j - 1].is_whitespace()
            && chars[j - 1] != '\\'
            && !is_word(chars.get(j + 1))
    })
}

/// The next `c` at or after `from` that is not escaped with `\\`.
fn find_unescaped(chars: &[char], from: usize, c: char) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            x if x == c => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// Like [`find_seq`], skipping escaped characters.
fn find_seq_unescaped(chars: &[char], from: usize, seq: &[char]) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j..].starts_with(seq) {
            return Some(j);
        }
        j += if chars[j] == '\\' { 2 } else { 1 };
    }
    None
}

fn find_seq(chars: &[char], from: usize, seq: &[char]) -> Option<usize> {
    if from > chars.len() {
        return None;
    }
    (from..chars.len()).find(|&j| chars[j..].starts_with(seq))
}

enum Bracket {
    Mention(String),
    Link { text: String, url: String },
}

fn bracket(inner: &str) -> Option<Bracket> {
    if let Some(user) = inner.strip_prefix('~') {
        let id = user.strip_prefix("accountid:").unwrap_or(user).trim();
        return (!id.is_empty()).then(|| Bracket::Mention(id.to_string()));
    }
    if let Some((text, url)) = inner.rsplit_once('|') {
        let url = url.trim();
        if url.is_empty() {
            return None;
        }
        return Some(Bracket::Link {
            text: if text.is_empty() {
                url.to_string()
            } else {
                text.to_string()
            },
            url: url.to_string(),
        });
    }
    let t = inner.trim();
    if t.contains("://") || t.starts_with("mailto:") {
        return Some(Bracket::Link {
            text: t.to_string(),
            url: t.to_string(),
        });
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// How a mention names its person: Cloud's account id or Data Center's user name.
#[derive(Clone, Copy)]
enum Names {
    AccountId,
    UserName,
}

fn blocks_to_wiki(blocks: &[Block], names: Names) -> String {
    blocks
        .iter()
        .map(|b| block_to_wiki(b, names))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn block_to_wiki(b: &Block, names: Names) -> String {
    match b {
        Block::Paragraph { content } => inlines_to_wiki(content, true, names),
        Block::Heading { level, content } => {
            format!("h{}. {}", level, inlines_to_wiki(content, false, names))
        }
        Block::BulletList { .. } | Block::OrderedList { .. } => {
            let mut lines = Vec::new();
            list_to_wiki(b, "", &mut lines, names);
            lines.join("\n")
        }
        Block::CodeBlock { language, text } => match language {
            Some(l) => format!("{{code:{l}}}\n{text}\n{{code}}"),
            None => format!("{{code}}\n{text}\n{{code}}"),
        },
        Block::Quote { blocks } => match blocks.as_slice() {
            [Block::Paragraph { content }] if !content.contains(&Inline::HardBreak) => {
                format!("bq. {}", inlines_to_wiki(content, false, names))
            }
            _ => format!("{{quote}}\n{}\n{{quote}}", blocks_to_wiki(blocks, names)),
        },
        Block::Rule => "----".to_string(),
    }
}

fn list_to_wiki(b: &Block, prefix: &str, lines: &mut Vec<String>, names: Names) {
    let (items, c) = match b {
        Block::BulletList { items } => (items, '*'),
        Block::OrderedList { items } => (items, '#'),
        _ => return,
    };
    let marker = format!("{prefix}{c}");
    for item in items {
        let mut first = true;
        for blk in item {
            match blk {
                Block::BulletList { .. } | Block::OrderedList { .. } => {
                    if first {
                        // An item that opens with a nested list: keep the level with an empty
                        // entry so nesting survives.
                        lines.push(format!("{marker} "));
                    }
                    list_to_wiki(blk, &marker, lines, names);
                }
                Block::Paragraph { content } | Block::Heading { content, .. } => {
                    let text = inlines_to_wiki(content, false, names);
                    if first {
                        lines.push(format!("{marker} {text}"));
                    } else if let Some(last) = lines.last_mut() {
                        // Extra paragraphs of an item join its line with a break.
                        last.push_str(" \\\\ ");
                        last.push_str(&text);
                    }
                }
                // Code, quotes and rules cannot live inside a wiki list item: they follow it.
                other => lines.push(block_to_wiki(other, names)),
            }
            first = false;
        }
    }
}

fn inlines_to_wiki(content: &[Inline], para_start: bool, names: Names) -> String {
    let mut out = String::new();
    for (idx, inline) in content.iter().enumerate() {
        match inline {
            Inline::HardBreak => out.push_str("\\\\"),
            Inline::Mention { id, .. } => {
                out.push_str(match names {
                    Names::AccountId => "[~accountid:",
                    Names::UserName => "[~",
                });
                out.push_str(id);
                out.push(']');
            }
            Inline::Text { text, marks, link } => {
                // Inside a link the neighbours are its brackets.
                let (before, after) = if link.is_some() {
                    (Some('['), Some('|'))
                } else {
                    (
                        out.chars().last(),
                        content.get(idx + 1).and_then(|n| match n {
                            Inline::Text { text, marks, link }
                                if *marks == Marks::NONE && link.is_none() =>
                            {
                                text.chars().next()
                            }
                            // A marker, brace or bracket comes first.
                            Inline::Text { .. } | Inline::Mention { .. } => Some('['),
                            Inline::HardBreak => Some('\\'),
                        }),
                    )
                };
                let at_start = para_start && out.is_empty();
                let body = marked(text, *marks, before, after, at_start && link.is_none());
                match link {
                    Some(url) if *marks == Marks::NONE && text == url && url.contains("://") => {
                        out.push_str(&format!("[{url}]"));
                    }
                    Some(url) => out.push_str(&format!("[{body}|{url}]")),
                    None => out.push_str(&body),
                }
            }
        }
    }
    out
}

/// `text` with its marks, using the unconstrained `{*}` form where the plain one would not
/// be read back (inside a word, or around leading/trailing spaces). `next` is the first
/// character written after this run, when known.
fn marked(
    text: &str,
    marks: Marks,
    before: Option<char>,
    after: Option<char>,
    at_start: bool,
) -> String {
    let active: Vec<char> = [(marks.bold, '*'), (marks.italic, '_'), (marks.strike, '-')]
        .into_iter()
        .filter_map(|(on, c)| on.then_some(c))
        .collect();
    let mut s = if marks.code {
        format!("{{{{{text}}}}}")
    } else if active.is_empty() {
        escape(text, at_start, &active, after)
    } else {
        // Inside a mark, the closing marker follows the text.
        escape(text, false, &active, Some('*'))
    };
    let edges_ok = !text.starts_with(char::is_whitespace) && !text.ends_with(char::is_whitespace);
    for (on, c) in [(marks.strike, '-'), (marks.italic, '_'), (marks.bold, '*')] {
        if !on {
            continue;
        }
        let constrained = edges_ok
            && !before.is_some_and(char::is_alphanumeric)
            && !after.is_some_and(char::is_alphanumeric);
        let plain = format!("{c}{s}{c}");
        // At the start of a line `*# x*` would read as a list item.
        s = if constrained && !(at_start && list_marker(&plain).is_some()) {
            plain
        } else {
            format!("{{{c}}}{s}{{{c}}}")
        };
    }
    s
}

/// Escapes what the reader would take for markup: always `*_{}[]` and the run's own markers
/// (`active`), `-`/`+` where they could open a mark (`after` is the character written after
/// the text), and line-start constructs when `at_start`. A backslash is written as is: wiki
/// markup has no escape for it that survives (`\\` is a line break), so one right before
/// punctuation is lost on the way back.
fn escape(text: &str, at_start: bool, active: &[char], after: Option<char>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 4);
    // `h1. ` and `bq. ` at the start of a line would become a heading or quote: `h1\. `.
    let block_start = at_start && (heading(text).is_some() || text.starts_with("bq. "));
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i == 0 { None } else { chars.get(i - 1) };
        let next = chars.get(i + 1).copied().or(after);
        let special = match c {
            '*' | '_' | '{' | '}' | '[' | ']' => true,
            c if active.contains(&c) => true,
            '-' | '+' => {
                (!is_word(prev) && next.is_some_and(|n| !n.is_whitespace())) || (i == 0 && at_start)
            }
            '#' | '|' => i == 0 && at_start,
            '.' => block_start && i == 2,
            '\n' => {
                // A newline inside a run is a line break.
                out.push_str("\\\\");
                continue;
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

#[cfg(test)]
mod tests;
