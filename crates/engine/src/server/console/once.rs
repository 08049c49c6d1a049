//! One-time sign-in links: `/signin?once=<code>`, what `tandem demo` prints so that a
//! newcomer clicks and is in the console without pasting a token.
//!
//! A code is 32 random bytes, minted by the process that serves the console (only code
//! running in it can ask, see `app::Running::console_signin_link`), valid for
//! [`LINK_MINUTES`] and taken out of the table on its first use, whether that use succeeds or
//! comes too late. Opening it starts an ordinary session (the normal cookie) and redirects to
//! `/`, so the link stays out of every later page and request. The table keeps only each
//! code's SHA-256: nothing held in memory signs anyone in. A restart forgets every code.
//!
//! No token is in the link, only the code; the token-paste sign-in at `/login` is unchanged.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a link stays valid.
pub const LINK_MINUTES: i64 = 10;

/// Who a code signs in, and until when.
type Grant = (String, DateTime<Utc>);

/// The codes minted and not used yet; one per server.
#[derive(Default)]
pub struct SigninLinks {
    /// SHA-256 of the code → its grant.
    codes: Mutex<HashMap<[u8; 32], Grant>>,
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

impl SigninLinks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new code that signs in `user` once, within [`LINK_MINUTES`] of `now`.
    pub fn mint(&self, user: &str, now: DateTime<Utc>) -> String {
        let code = hex::encode(rand::random::<[u8; 32]>());
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        // Expired codes go when a new one is minted: the table never grows past the codes
        // of the last ten minutes.
        codes.retain(|_, (_, expires)| *expires > now);
        codes.insert(
            digest(&code),
            (user.to_string(), now + TimeDelta::minutes(LINK_MINUTES)),
        );
        code
    }

    /// The user `code` signs in, if it was minted here, is unexpired and unused. Any use
    /// spends it, so a second one, or one after it expired, gets `None`.
    pub fn redeem(&self, code: &str, now: DateTime<Utc>) -> Option<String> {
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let (user, expires) = codes.remove(&digest(code.trim()))?;
        (expires > now).then_some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once_within_its_ten_minutes() {
        let links = SigninLinks::new();
        let now = Utc::now();
        let code = links.mint("admin", now);
        assert_eq!(code.len(), 64);
        assert_eq!(links.redeem("not a code", now), None);
        assert_eq!(links.redeem("", now), None);
        assert_eq!(
            links.redeem(&code, now + TimeDelta::minutes(9)),
            Some("admin".into())
        );
        assert_eq!(links.redeem(&code, now), None, "used already");

        let late = links.mint("admin", now);
        assert_eq!(
            links.redeem(&late, now + TimeDelta::minutes(LINK_MINUTES)),
            None,
            "expired"
        );
        assert_eq!(links.redeem(&late, now), None, "a late use spends it too");

        // Codes are independent, and an expired one is dropped when the next is minted.
        let a = links.mint("admin", now);
        let b = links.mint("alice", now);
        assert_ne!(a, b);
        assert_eq!(links.redeem(&b, now), Some("alice".into()));
        assert_eq!(links.redeem(&a, now), Some("admin".into()));
        let _old = links.mint("admin", now);
        let _new = links.mint("admin", now + TimeDelta::minutes(LINK_MINUTES + 1));
        assert_eq!(links.codes.lock().unwrap().len(), 1);
    }
}
