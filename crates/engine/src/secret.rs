//! Secrets from configuration: API tokens, passwords, webhook secrets.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display` (both print `***`), so a
//! config struct can be logged or printed in an error without leaking credentials. The value
//! is reachable only through [`Secret::expose`], which makes every use easy to find.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2-distinctive");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert!(s.matches(b"hunter2-distinctive"));
        assert!(!s.matches(b"hunter2"));
        assert_eq!(s.expose(), "hunter2-distinctive");
    }
}
