//! Names as Kubernetes and DNS accept them, parsed once at the edge; and the error that names the bad field.

use serde::Serialize;
use utoipa::ToSchema;

/// Why an input was refused, naming the field.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<Invalid> for crate::ApiError {
    fn from(e: Invalid) -> Self {
        crate::ApiError::invalid(e.field, e.message)
    }
}

/// A DNS-1123 label (what Kubernetes accepts as a node or service name): 1–63 of `a-z0-9-`, alphanumeric at both ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[schema(value_type = String, example = "jetson-orin-1")]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = raw
            .bytes()
            .next()
            .zip(raw.bytes().last())
            .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
        if raw.is_empty() || raw.len() > 63 || !ok_chars || !ok_ends {
            return Err(Invalid::new(
                field,
                format!(
                    "{raw:?} is not a valid name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

use std::collections::BTreeMap;

/// Kubernetes-style labels: `[prefix/]name` keys, values of at most 63 characters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, Invalid> {
        for (key, value) in &raw {
            let field = format!("labels.{key}");
            let (prefix, name) = key
                .rsplit_once('/')
                .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
            let segment_ok = |s: &str, max: usize| {
                !s.is_empty()
                    && s.len() <= max
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
            };
            let prefix_ok = prefix.is_none_or(|p| {
                p.len() <= 253 && p.split('.').all(|part| Name::parse("", part).is_ok())
            });
            if !segment_ok(name, 63) || !prefix_ok {
                return Err(Invalid::new(
                    field,
                    "is not a valid label key ([prefix/]name)",
                ));
            }
            if !value.is_empty() && !segment_ok(value, 63) {
                return Err(Invalid::new(
                    field,
                    format!("{value:?} is not a valid label value"),
                ));
            }
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_with_the_key_as_field() {
        let ok = BTreeMap::from([("homestation.io/jetpack".to_owned(), "6.0".to_owned())]);
        assert!(Labels::parse(ok).is_ok());
        let bad = BTreeMap::from([("bad key".to_owned(), "x".to_owned())]);
        assert_eq!(Labels::parse(bad).unwrap_err().field, "labels.bad key");
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(Name::parse("n", "jetson-orin-1").is_ok());
        for bad in ["", "-a", "a-", "Upper", "a_b", &"x".repeat(64)] {
            let err = Name::parse("name", bad).unwrap_err();
            assert_eq!(err.field, "name");
        }
    }
}
