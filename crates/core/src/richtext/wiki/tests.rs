//! Unit tests of `wiki`, kept out of the file they test so it reads as the code alone.

use super::*;
use proptest::prelude::*;

fn bold() -> Marks {
    Marks {
        bold: true,
        ..Marks::NONE
    }
}

#[test]
fn reads_the_common_subset() {
    let doc = Doc::from_wiki(
        "h1. Title\n\nSome *bold* and _italic_ and -gone- and {{code}} and +under+.\nNext line\\\\broken [Example|https://e.com] [https://x.y] [~accountid:abc]\n\n* one\n** one.a\n* two\n# first\n\n{code:java}\nint x;\n{code}\nbq. wise words\n----\n{quote}\nquoted *para*\n{quote}",
    );
    let b = &doc.normalized().blocks;
    assert_eq!(
        b[0],
        Block::Heading {
            level: 1,
            content: vec![Inline::text("Title")]
        }
    );
    let Block::Paragraph { content } = &b[1] else {
        panic!("{b:#?}")
    };
    assert_eq!(content[1], Inline::styled("bold", bold()));
    assert!(content.contains(&Inline::styled(
        "code",
        Marks {
            code: true,
            ..Marks::NONE
        }
    )));
    assert!(content.contains(&Inline::Text {
        text: "Example".into(),
        marks: Marks::NONE,
        link: Some("https://e.com".into())
    }));
    assert!(content.contains(&Inline::Mention {
        id: "abc".into(),
        text: String::new()
    }));
    assert_eq!(
        content.iter().filter(|i| **i == Inline::HardBreak).count(),
        2
    );
    assert!(
        matches!(&b[2], Block::BulletList { items } if items.len() == 2 && items[0].len() == 2)
    );
    assert!(matches!(&b[3], Block::OrderedList { items } if items.len() == 1));
    assert_eq!(
        b[4],
        Block::CodeBlock {
            language: Some("java".into()),
            text: "int x;".into()
        }
    );
    assert!(matches!(&b[5], Block::Quote { .. }));
    assert_eq!(b[6], Block::Rule);
    assert!(matches!(&b[7], Block::Quote { blocks } if blocks.len() == 1));
    assert_eq!(b.len(), 8);
}

#[test]
fn canonical_wiki_round_trips() {
    for w in [
        "plain text",
        "h2. Heading *bold*",
        "a *bold* _it_ -strike- {{code}} end",
        "*_both_*",
        "mid{*}word{*}bold",
        "line one\\\\line two",
        "see [the site|https://e.com] and [https://x.y]",
        "hi [~accountid:557058:abc-def]",
        "* one\n** nested\n* two\n\n# a\n# b",
        "{code:rust}\nfn main() {}\n{code}",
        "{code}\nno language\n{code}",
        "bq. quoted",
        "----",
        "{quote}\nfirst\n\nsecond\n{quote}",
        "escaped \\* star and \\[bracket\\] and a\\_b",
        "h1\\. not a heading",
        "\\- not a list",
    ] {
        let doc = Doc::from_wiki(w);
        assert_eq!(doc.to_wiki(), w, "{doc:#?}");
    }
}

#[test]
fn tolerates_anything() {
    for w in [
        "",
        "*",
        "**",
        "{{",
        "{code",
        "{code}",
        "{code:",
        "[",
        "[|]",
        "[~]",
        "\\",
        "{*}",
        "h1.",
        "*a _b* c_",
        "# ",
        "#",
        "- ",
        "{quote}{quote}",
        "[a|]",
        "-",
        "a\r\nb\rc",
        "{noformat}x",
        "***** deep\n* up",
        "## starts deep",
        "{quote}unclosed *x",
    ] {
        let doc = Doc::from_wiki(w);
        let _ = (doc.to_wiki(), doc.to_adf(), doc.to_plain());
    }
    assert_eq!(Doc::from_wiki("{noformat}*x*{noformat}").to_plain(), "*x*");
    assert_eq!(Doc::from_wiki("2*3*4 a_b_c").to_plain(), "2*3*4 a_b_c");
    assert_eq!(
        Doc::from_wiki("[#anchor] [^file.txt]").to_plain(),
        "[#anchor] [^file.txt]"
    );
}

#[test]
fn wiki_and_adf_agree() {
    let wiki = Doc::from_wiki("h3. T\n\n*b* and [l|https://e.com]\n\n* x\n* y");
    let adf = Doc::from_adf(&wiki.to_adf()).unwrap();
    assert_eq!(wiki, adf);
    assert_eq!(Doc::from_wiki(&adf.to_wiki()), wiki);
}

fn inline_strategy() -> impl Strategy<Value = Inline> {
    // Markup characters on purpose; backslashes are not representable (see `escape`).
    let text = "[a-z *_{}\\[\\]#|+.-]{1,8}";
    prop_oneof![
        6 => (text, any::<(bool, bool, bool, bool)>(), prop::option::of("https://[a-z]{1,5}\\.com"))
            .prop_map(|(text, (b, i, c, s), link)| {
                // Code spans cannot hold braces, link texts no `|` or `]`.
                let bad: &[char] = match (c, link.is_some()) {
                    (true, _) => &['{', '}', '|', ']'],
                    (false, true) => &['|', ']'],
                    _ => &[],
                };
                Inline::Text {
                    text: text.replace(bad, "x"),
                    marks: Marks { bold: b, italic: i, code: c, strike: s },
                    link,
                }
            }),
        1 => Just(Inline::HardBreak),
        1 => "[a-z0-9]{1,6}".prop_map(|id| Inline::Mention { id, text: String::new() }),
    ]
}

fn block_strategy() -> impl Strategy<Value = Block> {
    let para = prop::collection::vec(inline_strategy(), 1..6)
        .prop_map(|content| Block::Paragraph { content })
        .boxed();
    prop_oneof![
        4 => para.clone(),
        1 => (1u8..=6, prop::collection::vec(inline_strategy(), 1..4))
            .prop_map(|(level, content)| Block::Heading { level, content: content.into_iter().filter(|i| *i != Inline::HardBreak).collect() }),
        1 => prop::collection::vec(para.clone().prop_map(|p| vec![p]), 1..4)
            .prop_map(|items| Block::BulletList { items }),
        1 => prop::collection::vec(para.prop_map(|p| vec![p]), 1..4)
            .prop_map(|items| Block::OrderedList { items }),
        1 => (prop::option::of("[a-z]{1,6}"), "[a-z ;(){}\n]{0,20}")
            .prop_map(|(language, text)| Block::CodeBlock { language, text }),
        1 => Just(Block::Rule),
    ]
}

/// Code spans cannot hold `}}` and wiki has no way to write code text that starts or ends
/// with a brace next to the delimiters; other than that, what we write we read back.
fn representable(d: &Doc) -> bool {
    fn ok(i: &Inline) -> bool {
        match i {
            Inline::Text { text, marks, link } => {
                !(marks.code && (text.contains('}') || text.contains('{')))
                    && !(marks.code && link.is_some() && text.contains('|'))
                    && !(link.is_some() && (text.contains('|') || text.contains(']')))
                    && !(text.contains('\\'))
            }
            _ => true,
        }
    }
    fn block_ok(b: &Block) -> bool {
        match b {
            Block::Paragraph { content } | Block::Heading { content, .. } => content.iter().all(ok),
            Block::BulletList { items } | Block::OrderedList { items } => {
                items.iter().flatten().all(block_ok)
            }
            Block::CodeBlock { text, .. } => !text.contains("{code}"),
            _ => true,
        }
    }
    d.blocks.iter().all(block_ok)
}

proptest! {
    #[test]
    fn doc_wiki_doc_round_trips(blocks in prop::collection::vec(block_strategy(), 0..5)) {
        let doc = Doc { blocks }.normalized();
        prop_assume!(representable(&doc));
        let wiki = doc.to_wiki();
        let back = Doc::from_wiki(&wiki);
        prop_assert_eq!(back.normalized(), doc, "wiki: {:?}", wiki);
    }

    #[test]
    fn doc_adf_doc_round_trips(blocks in prop::collection::vec(block_strategy(), 0..5)) {
        let doc = Doc { blocks }.normalized();
        let back = Doc::from_adf(&doc.to_adf()).unwrap();
        prop_assert_eq!(back.normalized(), doc);
    }

    #[test]
    fn any_wiki_parses(s in any::<String>()) {
        let d = Doc::from_wiki(&s);
        let _ = (d.to_wiki(), d.to_adf(), d.to_plain());
    }
}
