//! Unit tests of `adf`, kept out of the file they test so it reads as the code alone.

use super::*;

fn doc(content: Value) -> Value {
    json!({"type": "doc", "version": 1, "content": content})
}
fn p(content: Value) -> Value {
    json!({"type": "paragraph", "content": content})
}
fn t(text: &str) -> Value {
    json!({"type": "text", "text": text})
}
fn tm(text: &str, marks: &[&str]) -> Value {
    let ms: Vec<Value> = marks.iter().map(|m| json!({"type": m})).collect();
    json!({"type": "text", "text": text, "marks": ms})
}

#[test]
fn round_trip_paragraphs_and_breaks() {
    let wiki = "first line\nsecond line\n\nnext paragraph";
    let d = from_wiki(wiki);
    assert!(is_doc(&d));
    assert_eq!(to_wiki(&d), wiki);
    assert_eq!(from_plain(wiki), d);
}

#[test]
fn marks_and_escapes() {
    let d = doc(json!([p(json!([
        t("a "),
        tm("bold", &["strong"]),
        t(" "),
        tm("it", &["em"]),
        t(" mid"),
        tm("word", &["strong"]),
        t(" "),
        tm("x", &["code"]),
        t(" *not bold* a_b -c- 1+1")
    ]))]));
    let w = to_wiki(&d);
    assert_eq!(
        w,
        "a *bold* _it_ mid{*}word{*} {{x}} \\*not bold\\* a\\_b \\-c\\- 1+1"
    );
    assert_eq!(from_wiki(&w), d);
}

#[test]
fn line_start_constructs_are_escaped() {
    for text in [
        "# not a list",
        "h1. not a heading",
        "bq. no",
        "- no",
        "----",
        "* no",
    ] {
        let d = doc(json!([p(json!([t(text)]))]));
        let w = to_wiki(&d);
        assert_eq!(from_wiki(&w), d, "{text:?} → {w:?}");
    }
}

#[test]
fn blocks_round_trip() {
    let d = doc(json!([
        {"type": "heading", "attrs": {"level": 2}, "content": [t("Title")]},
        {"type": "bulletList", "content": [
            {"type": "listItem", "content": [p(json!([t("one")])),
                {"type": "orderedList", "content": [{"type": "listItem", "content": [p(json!([t("one.a")]))]}]}]},
            {"type": "listItem", "content": [p(json!([t("two")]))]}
        ]},
        {"type": "codeBlock", "attrs": {"language": "rust"}, "content": [t("fn main() {}\n\nx")]},
        {"type": "blockquote", "content": [p(json!([t("quoted")]))]},
        {"type": "rule"},
    ]));
    let w = to_wiki(&d);
    assert_eq!(
        w,
        "h2. Title\n\n* one\n*# one.a\n* two\n\n{code:rust}\nfn main() {}\n\nx\n{code}\n\n{quote}\nquoted\n{quote}\n\n----"
    );
    assert_eq!(from_wiki(&w), d);
}

#[test]
fn code_spans_and_tilde_links_read_as_written() {
    // A marker inside a code span does not close the mark around it.
    let d = from_wiki("*{{*}}*");
    assert_eq!(d["content"][0]["content"][0]["text"], "*");
    assert_eq!(
        d["content"][0]["content"][0]["marks"],
        json!([{"type": "strong"}, {"type": "code"}])
    );
    // `[~x|url]` is a link, `[~x]` a mention.
    let d = from_wiki("[~x|https://e.com] [~accountid:abc]");
    let c = &d["content"][0]["content"];
    assert_eq!(c[0]["marks"][0]["attrs"]["href"], "https://e.com");
    assert_eq!(c[2], json!({"type": "mention", "attrs": {"id": "abc"}}));
}

#[test]
fn plain_text_has_no_markup() {
    let d = doc(json!([p(json!([tm("b*", &["strong"]), t(" c")]))]));
    assert_eq!(plain_text(&d), "b* c");
    assert!(to_html(&d).contains("<b>b*</b>"));
}

#[test]
fn garbage_never_panics() {
    for w in [
        "",
        "*",
        "**",
        "{{",
        "{{}}",
        "{*}",
        "{*}x",
        "[",
        "[|]",
        "[~]",
        "\\",
        "h1.",
        "*a _b* c_",
        "# ",
        "{code",
        "{code:",
        "{quote}{quote}",
        "[a|]",
        "-",
        "a\r\nb\rc",
        "{noformat}x",
        "***** deep\n* up",
        "## deep",
        "{quote}unclosed *x",
        "é*ü*",
        "[x|y|z]",
        "\\\\\\",
    ] {
        let d = from_wiki(w);
        let _ = (to_wiki(&d), plain_text(&d), to_html(&d));
    }
    for v in [
        json!(null),
        json!(3),
        json!("s"),
        json!({"type": "doc", "content": 5}),
        json!({"type": "doc", "content": [{"type": "text"}, {"content": [1, 2]}]}),
    ] {
        let _ = (to_wiki(&v), plain_text(&v), to_html(&v));
    }
}
