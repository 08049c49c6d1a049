//! Secrets from configuration: API tokens, passwords, webhook secrets.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display` (both print `***`), so a
//! config struct can be logged or printed in an error without leaking credentials. The value
//! is reachable only through [`Secret::expose`], which makes every use easy to find.
//!
//! A password can also sit inside a URL (`postgres://user:password@db/tandem`);
//! [`redact_url`] is the one place that hides it, for every message and log that shows one.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A credential whose value is never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for building an auth header or checking a signature.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with a presented credential in constant time, so response timing does not
    /// reveal how many leading bytes were right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The URL with the password of its userinfo replaced by `***` (the user is kept), fit for
/// messages and logs; a URL without a password comes back unchanged.
///
/// Read as RFC 3986 reads it: the authority follows `//` (after `scheme:`, or at the start
/// of a reference without a scheme) and ends at the first `/`, `?` or `#`; the userinfo is
/// everything before the last `@` inside it, and the password everything after the
/// userinfo's first `:`. So an `@` in the path, query or fragment is not taken for the end
/// of a userinfo, and a password holding an unencoded `@` or `:` is still hidden whole.
/// Without `//` there is no authority, so nothing is taken for a password (`sqlite:a.db`).
pub fn redact_url(url: &str) -> String {
    let Some(start) = authority_start(url) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let at = match authority.rfind('@') {
        Some(at) => at,
        // Not a URL by RFC 3986, but what a person writes with an unencoded `/` in the
        // password (`u:p/w@db`): hiding too much of an odd URL is harmless, showing a
        // password is not, so an `@` before the query counts when the authority holds a `:`.
        None => match rest[..rest.find(['?', '#']).unwrap_or(rest.len())].rfind('@') {
            Some(at) if authority.contains(':') => at,
            _ => return url.to_string(),
        },
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &userinfo[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

/// Where the authority of `url` starts: after `scheme://`, or after a leading `//`. The
/// scheme is what precedes the first `:`, as long as it holds no `/`, `?` or `#` (which
/// would make that `:` part of a path); its characters are not checked further, so that
/// a malformed scheme still has its password hidden.
fn authority_start(url: &str) -> Option<usize> {
    if url.starts_with("//") {
        return Some(2);
    }
    let colon = url.find(':')?;
    if colon == 0 || url[..colon].contains(['/', '?', '#']) {
        return None;
    }
    url[colon + 1..].starts_with("//").then_some(colon + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_user_and_hide_only_the_password() {
        let cases = [
            // The common case, with port, path and query.
            (
                "postgres://tandem:s3cret@db:5432/tandem?sslmode=require",
                "postgres://tandem:***@db:5432/tandem?sslmode=require",
            ),
            // A password holding an unencoded `@` or `:`: the userinfo ends at the last `@`
            // of the authority, the user at the first `:`.
            ("postgres://u:p@ss@db/x", "postgres://u:***@db/x"),
            // An unencoded `/` in the password: still hidden.
            ("postgres://u:p/w@db/x", "postgres://u:***@db/x"),
            ("postgres://u:a:b:c@db/x", "postgres://u:***@db/x"),
            // Percent-encoding is left as it is: the user stays encoded, the password goes.
            (
                "postgres://us%40er:p%3Ass%2F@db/x",
                "postgres://us%40er:***@db/x",
            ),
            // An empty password is still a password field.
            ("postgres://u:@db/x", "postgres://u:***@db/x"),
            // IPv6 hosts carry colons of their own, after the `@`.
            (
                "postgres://u:p@[::1]:5432/x",
                "postgres://u:***@[::1]:5432/x",
            ),
            // A reference without a scheme still has an authority after `//`.
            ("//u:p@db/x", "//u:***@db/x"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for url in [
            "postgres://u@db/x",
            "postgres://db:5432/x",
            "sqlite://tandem.db",
            "sqlite:///var/lib/tandem/a:b@c.db",
            "sqlite::memory:",
            "sqlite:tandem.db",
            // An `@` after the authority is not a userinfo: in the query, the path or the
            // fragment.
            "postgres://db/x?options=a:b@c",
            "postgres://db/x:y@z",
            "https://host#frag:x@y",
            // No `//`, so no authority (and nothing that a client would send as a password).
            "db.example.com:5432/x",
            "u:p@db/x",
            "",
            "://",
        ] {
            assert_eq!(redact_url(url), url);
        }
        // With a password and an `@` in the query, only the password goes.
        assert_eq!(
            redact_url("postgres://u:p@db/x?application_name=a@b"),
            "postgres://u:***@db/x?application_name=a@b"
        );
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2-distinctive");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert!(s.matches(b"hunter2-distinctive"));
        assert!(!s.matches(b"hunter2"));
        assert_eq!(s.expose(), "hunter2-distinctive");
    }
}
