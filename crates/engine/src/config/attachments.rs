//! The attachment keys of `[[connection]]`: which way files travel (`attachments`), the
//! largest file copied (`attachment_max_bytes`), the content types allowed
//! (`attachment_types`) and what a deletion does (`attachment_deletes`).

use tandem_core::attachment::AttachmentSettings;

/// A connection's attachment settings, as written in the config (the rules' own settings).
pub type AttachmentsConfig = AttachmentSettings;

/// What serde cannot check, reported at `at` (`connection[0]`).
pub(super) fn check(a: &AttachmentsConfig, at: &str, issue: &mut impl FnMut(&str, String)) {
    if a.max_bytes == 0 {
        issue(
            &format!("{at}.attachment_max_bytes"),
            "must be more than 0 (turn attachments off with attachments = \"none\")".into(),
        );
    }
    for (i, t) in a.types.iter().enumerate() {
        let t = t.trim();
        let well_formed = match t.split_once('/') {
            Some((major, minor)) => {
                !major.is_empty()
                    && !minor.is_empty()
                    && !t.contains(char::is_whitespace)
                    && !t.contains(';')
                    && (major != "*" || minor == "*")
            }
            None => false,
        };
        if !well_formed {
            issue(
                &format!("{at}.attachment_types[{i}]"),
                format!(
                    "`{t}` is not a content type: write `type/subtype`, `type/*` or `*/*` \
                     (e.g. \"image/*\", \"application/pdf\")"
                ),
            );
        }
    }
}
