//! HTML building for the console: one escaping helper every page uses for every value it did
//! not write itself, and the page frame (navigation, sign-out, assets).
//!
//! Pages are plain strings: a handful of pages do not need a template engine, and writing
//! through [`esc`] keeps the one rule that matters (no stored text reaches the page raw)
//! visible at every call site.

use std::fmt::Write as _;

/// `s` with the five characters that can end an HTML text node or a quoted attribute value
/// replaced by entities, so it is safe in both.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a URL path segment or query value (everything but unreserved
/// characters), so an id like `a/b?c` stays one segment.
pub(super) fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The navigation entries: path, label.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/links", "Links"),
    ("/events", "Events"),
    ("/events?status=dead", "Dead letters"),
    ("/conflicts", "Conflicts"),
    ("/audit", "Audit"),
];

/// What the frame needs to know about the viewer.
pub(super) struct Viewer<'a> {
    /// Who is signed in (shown, and named in the audit trail).
    pub user: &'a str,
    /// The session's CSRF token for the sign-out form; `None` for a Bearer-token request,
    /// which has no session to end.
    pub csrf: Option<&'a str>,
}

/// A whole page: `current` is the navigation path to mark as the current page.
pub(super) fn page(title: &str, current: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(v) = viewer {
        nav.push_str("<nav aria-label=\"Console\"><ul>");
        for (path, label) in NAV {
            let mark = if *path == current {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<li><a href=\"{path}\"{mark}>{label}</a></li>");
        }
        nav.push_str("</ul>");
        let _ = write!(
            nav,
            "<p class=\"who\">Signed in as <strong>{}</strong></p>",
            esc(v.user)
        );
        if let Some(csrf) = v.csrf {
            let _ = write!(
                nav,
                "<form method=\"post\" action=\"/logout\" class=\"signout\">{}\
                 <button type=\"submit\">Sign out</button></form>",
                csrf_field(csrf)
            );
        }
        nav.push_str("</nav>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Tandem</title>\
         <link rel=\"stylesheet\" href=\"/console/console.css\">\
         <script src=\"/console/console.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><a class=\"brand\" href=\"/\">Tandem</a>{nav}</header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
    )
}

/// The hidden field every state-changing form carries.
pub(super) fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A table with a caption and column headers; `rows` are already-built `<tr>` elements.
pub(super) fn table(caption: &str, headers: &[&str], rows: &str, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = format!(
        "<div class=\"scroll\"><table><caption>{}</caption><thead><tr>",
        esc(caption)
    );
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    let _ = write!(out, "</tr></thead><tbody>{rows}</tbody></table></div>");
    out
}

/// One `<tr>` of already-escaped cells.
pub(super) fn row(cells: &[String]) -> String {
    let mut out = String::from("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>");
    out
}

/// A timestamp as people read it (UTC, to the second), in a `<time>` element.
pub(super) fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// An `<option>` list for a `<select>`: `(value, label)` pairs, the current one selected.
pub(super) fn options(choices: &[(String, String)], current: Option<&str>) -> String {
    let mut out = String::new();
    for (value, label) in choices {
        let sel = if Some(value.as_str()) == current {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(value),
            esc(label)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain ✓"), "plain ✓");
    }

    #[test]
    fn url_parts_stay_one_segment() {
        assert_eq!(url_part("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(url_part("TEST-1"), "TEST-1");
        assert_eq!(url_part("é"), "%C3%A9");
    }
}
