//! Console sign-in: HMAC-signed session cookies, CSRF tokens and the same-origin check.
//!
//! A session is a cookie `tandem_session=<user>.<expires>.<nonce>.<mac>`, the MAC an
//! HMAC-SHA256 over the rest under a key derived from every sign-in token (the admin token
//! and each of `server.console_users`). Nothing is kept on the server, so sessions survive a
//! restart and work on every instance sharing one config; and changing any token (or adding
//! or removing a user) ends every session at once. Signing out clears the cookie
//! and revokes its nonce in this process until it would have expired anyway.
//!
//! Every state-changing request must carry the session's CSRF token (an HMAC of the nonce,
//! so it cannot be derived without the key) in a form field, and must not come from another
//! site: `Sec-Fetch-Site`, when the browser sends it, must be `same-origin` (or `none`), and
//! `Origin`, when present, must name this host. With `SameSite=Strict` on the cookie, that is
//! three independent locks.

use crate::config::{ADMIN_USER, ConsoleUser};
use crate::secret::Secret;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub(super) const COOKIE: &str = "tandem_session";

/// How long a sign-in lasts.
pub(super) const SESSION_HOURS: i64 = 8;

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub user: String,
    pub nonce: String,
    pub expires: DateTime<Utc>,
}

/// The keys and the revoked nonces; one per server.
pub(super) struct Sessions {
    /// `None` when no token is configured: nobody can sign in.
    key: Option<[u8; 32]>,
    /// Who may sign in: user name and token, the admin token first.
    tokens: Vec<(String, Secret)>,
    revoked: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Sessions {
    pub fn new(admin_token: Option<&Secret>, users: &[ConsoleUser]) -> Self {
        let tokens: Vec<(String, Secret)> = admin_token
            .map(|t| (ADMIN_USER.to_string(), t.clone()))
            .into_iter()
            .chain(users.iter().map(|u| (u.name.clone(), u.token.clone())))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        // Every name and token goes into the key, each length-prefixed so that no two lists
        // hash alike: changing, adding or removing any of them ends every session.
        let key = (!tokens.is_empty()).then(|| {
            let mut h = Sha256::new();
            h.update(b"tandem console session key v2\0");
            for (name, token) in &tokens {
                for part in [name.as_str(), token.expose()] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
            }
            h.finalize().into()
        });
        Sessions {
            key,
            tokens,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// Whether anyone can sign in at all.
    pub fn open(&self) -> bool {
        self.key.is_some()
    }

    fn mac(&self, parts: &[&str]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(self.key.as_ref()?).ok()?;
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(b"|");
            }
            mac.update(p.as_bytes());
        }
        Some(mac)
    }

    /// The user a presented sign-in token belongs to. Every token is compared (in constant
    /// time), so the answer's timing does not tell which user's token was nearly right.
    pub fn user_for_token(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.tokens {
            if token.matches(presented.as_bytes()) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// A new session for `user` and the cookie value that carries it.
    pub fn start(&self, user: &str, now: DateTime<Utc>) -> Option<(Session, String)> {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        // Whole seconds: the cookie carries the expiry as a Unix time.
        let exp_secs = (now + TimeDelta::hours(SESSION_HOURS)).timestamp();
        let expires = DateTime::from_timestamp(exp_secs, 0)?;
        let exp = exp_secs.to_string();
        let mac = self.mac(&["session", user, &exp, &nonce])?;
        let value = format!(
            "{user}.{exp}.{nonce}.{}",
            hex::encode(mac.finalize().into_bytes())
        );
        Some((
            Session {
                user: user.to_string(),
                nonce,
                expires,
            },
            value,
        ))
    }

    /// The session the request's cookie carries, if it is genuine, unexpired and not signed
    /// out.
    pub fn read(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Session> {
        let value = cookie(headers, COOKIE)?;
        // From the right: a user name may hold dots, the other three parts never do.
        let mut parts = value.rsplitn(4, '.');
        let (mac, nonce, exp, user) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let given = hex::decode(mac).ok()?;
        self.mac(&["session", user, exp, nonce])?
            .verify_slice(&given)
            .ok()?;
        let expires = DateTime::from_timestamp(exp.parse().ok()?, 0)?;
        if expires <= now {
            return None;
        }
        if self
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(nonce)
        {
            return None;
        }
        Some(Session {
            user: user.to_string(),
            nonce: nonce.to_string(),
            expires,
        })
    }

    /// Ends a session: its cookie is refused from now on (also if it was copied).
    pub fn revoke(&self, s: &Session, now: DateTime<Utc>) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp > now);
        revoked.insert(s.nonce.clone(), s.expires);
    }

    /// The session's CSRF token.
    pub fn csrf(&self, s: &Session) -> String {
        self.mac(&["csrf", &s.nonce])
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Whether `presented` is the session's CSRF token (constant time).
    pub fn csrf_ok(&self, s: &Session, presented: &str) -> bool {
        let want = self.csrf(s);
        !want.is_empty() && bool::from(want.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// One cookie's value from the `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Err(why)` when a state-changing request comes from another site (see the module docs).
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return Err(format!(
                "refused: the request came from another site (Sec-Fetch-Site: {site})"
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if host.is_empty() || origin_host != Some(host) {
            return Err("refused: the request came from another origin".to_string());
        }
    }
    Ok(())
}

/// Whether the browser reached us over HTTPS: Tandem itself speaks plain HTTP, so only a
/// TLS-terminating proxy in front can say so, with `X-Forwarded-Proto: https`. The header
/// only decides the cookie's `Secure` flag; a forged one can do no more than make the
/// cookie HTTPS-only for that client.
pub(super) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for a new session.
pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(super) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={v}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_round_trips_and_tampering_is_refused() {
        let s = Sessions::new(Some(&Secret::new("tok")), &[]);
        let now = Utc::now();
        let (session, value) = s.start("admin", now).unwrap();
        assert_eq!(s.read(&with_cookie(&value), now), Some(session.clone()));
        let forged = value.replacen("admin", "admim", 1);
        assert_eq!(s.read(&with_cookie(&forged), now), None);
        let later = now + TimeDelta::hours(SESSION_HOURS) + TimeDelta::seconds(1);
        assert_eq!(s.read(&with_cookie(&value), later), None, "expired");
        let other_key = Sessions::new(Some(&Secret::new("another token")), &[]);
        assert_eq!(other_key.read(&with_cookie(&value), now), None);
        assert!(s.csrf_ok(&session, &s.csrf(&session)));
        assert!(!s.csrf_ok(&session, ""));
        s.revoke(&session, now);
        assert_eq!(s.read(&with_cookie(&value), now), None, "signed out");
    }

    #[test]
    fn no_token_no_sessions() {
        let s = Sessions::new(None, &[]);
        assert!(!s.open());
        assert_eq!(s.user_for_token(""), None);
        assert!(s.start("admin", Utc::now()).is_none());
        assert!(!Sessions::new(Some(&Secret::new("")), &[]).open());
    }

    fn user(name: &str, token: &str) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            token: Secret::new(token),
        }
    }

    #[test]
    fn each_user_signs_in_as_themselves_and_any_token_change_ends_sessions() {
        let admin = Secret::new("admin-token");
        let users = [
            user("alice", "alice-token-0123456"),
            user("bob.smith", "bob-token-01234567"),
        ];
        let s = Sessions::new(Some(&admin), &users);
        assert_eq!(s.user_for_token("admin-token"), Some("admin"));
        assert_eq!(s.user_for_token("alice-token-0123456"), Some("alice"));
        assert_eq!(s.user_for_token("bob-token-01234567"), Some("bob.smith"));
        assert_eq!(s.user_for_token("alice-token-012345"), None);
        let now = Utc::now();
        let (session, value) = s.start("bob.smith", now).unwrap();
        assert_eq!(s.read(&with_cookie(&value), now), Some(session));
        // Only users: the console is open without an admin token.
        let only_users = Sessions::new(None, &users);
        assert!(only_users.open());
        assert_eq!(only_users.user_for_token("admin-token"), None);
        // Rotating one user's token, or removing a user, changes the key.
        let rotated = [users[0].clone(), user("bob.smith", "bob-token-rotated-1")];
        for other in [
            Sessions::new(Some(&admin), &rotated),
            Sessions::new(Some(&admin), &users[..1]),
            only_users,
        ] {
            assert_eq!(other.read(&with_cookie(&value), now), None);
        }
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&h).is_ok(),
            "no browser headers: the token decides"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h).is_ok());
    }
}
