//! The join token: `meshjoin1:` then the base64url (unpadded) of a small JSON
//! object holding what a joining node needs of the node that made it — its
//! name, role, reachable address, API port and the mesh key. The prefix is the
//! version: another shape gets another prefix. Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::manifest::kinds::Role;
use crate::manifest::name_problem;

/// What every token of this version starts with.
pub(crate) const PREFIX: &str = "meshjoin1:";

/// What a token holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JoinToken {
    /// The node that made it.
    pub node: String,
    pub role: Role,
    /// Where a joining node dials it: a host name or an IP.
    pub address: String,
    pub api_port: u16,
    /// The mesh API key.
    pub key: String,
}

/// Never the key: a token is a secret.
impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let JoinToken { node, role, address, api_port, key: _ } = self;
        f.debug_struct("JoinToken")
            .field("node", node)
            .field("role", role)
            .field("address", address)
            .field("api_port", api_port)
            .finish_non_exhaustive()
    }
}

/// Why a text is not a token; never quotes the text (it holds the key).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("it does not start with {PREFIX} (another version, or not a join token)")]
    Prefix,
    #[error("what follows {PREFIX} is not base64url")]
    Base64,
    #[error("it does not hold a join token's fields: {0}")]
    Fields(String),
    #[error("{0}")]
    Value(String),
}

impl JoinToken {
    /// The one line `meshctl join-token` prints.
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token serializes");
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads a token, blanks around it ignored.
    pub(crate) fn decode(text: &str) -> Result<JoinToken, TokenError> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(TokenError::Prefix)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Base64)?;
        let token: JoinToken = serde_json::from_slice(&json).map_err(|error| {
            // serde_json's message names a missing field but never a value.
            TokenError::Fields(error.to_string())
        })?;
        token.check().map_err(TokenError::Value)?;
        Ok(token)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(problem) = name_problem(&self.node) {
            return Err(format!("its node name {problem}"));
        }
        let plain_host = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
        if self.address.is_empty() || !self.address.chars().all(plain_host) {
            return Err("its address is not a host name or an IP".into());
        }
        if self.api_port == 0 {
            return Err("its API port is 0".into());
        }
        if self.key.is_empty() || !self.key.chars().all(|c| c.is_ascii_graphic()) {
            return Err("its key is empty or holds blanks".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            node: "agent-home-mini".into(),
            role: Role::Primary,
            address: "100.64.0.2".into(),
            api_port: 8000,
            key: "k".repeat(64),
        }
    }

    fn encoded(json: &str) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn a_token_reads_back_what_it_holds() {
        let line = token().encode();
        assert!(line.starts_with("meshjoin1:") && !line.contains(['\n', ' ', '=', '+', '/']), "{line}");
        assert_eq!(JoinToken::decode(&line), Ok(token()));
        assert_eq!(JoinToken::decode(&format!("  {line}\n")), Ok(token()), "blanks around it");
    }

    #[test]
    fn what_is_not_a_token_is_refused_with_its_reason() {
        let good = token().encode();
        let body = good.strip_prefix(PREFIX).unwrap();
        let missing_key = r#"{"node":"mini","role":"primary","address":"10.0.0.1","apiPort":8000}"#;
        let bad_role = r#"{"node":"mini","role":"leader","address":"10.0.0.1","apiPort":8000,"key":"k"}"#;
        let bad_name = r#"{"node":"Mini!","role":"primary","address":"10.0.0.1","apiPort":8000,"key":"k"}"#;
        let bad_address = r#"{"node":"mini","role":"primary","address":"http://x/","apiPort":8000,"key":"k"}"#;
        type Expected = fn(&TokenError) -> bool;
        let table: [(&str, String, Expected); 8] = [
            ("no prefix", body.to_owned(), |e| *e == TokenError::Prefix),
            ("another version", format!("meshjoin2:{body}"), |e| *e == TokenError::Prefix),
            ("empty", String::new(), |e| *e == TokenError::Prefix),
            ("not base64url", format!("{PREFIX}{body}!!"), |e| *e == TokenError::Base64),
            ("missing field", encoded(missing_key), |e| matches!(e, TokenError::Fields(m) if m.contains("`key`"))),
            ("not JSON", encoded("hello"), |e| matches!(e, TokenError::Fields(_))),
            ("bad role", encoded(bad_role), |e| matches!(e, TokenError::Fields(_))),
            ("bad name", encoded(bad_name), |e| matches!(e, TokenError::Value(m) if m.contains("node name"))),
        ];
        for (what, text, expected) in table {
            let error = JoinToken::decode(&text).expect_err(what);
            assert!(expected(&error), "{what}: {error:?}");
        }
        let error = JoinToken::decode(&encoded(bad_address)).expect_err("bad address");
        assert!(matches!(&error, TokenError::Value(m) if m.contains("address")), "{error:?}");
    }

    #[test]
    fn neither_debug_nor_errors_show_the_key() {
        let token = token();
        assert!(!format!("{token:?}").contains(&token.key));
        let wrong_port =
            format!(r#"{{"node":"mini","role":"primary","address":"a","apiPort":"x","key":"{}"}}"#, token.key);
        let error = JoinToken::decode(&encoded(&wrong_port)).expect_err("a port that is no number");
        assert!(!error.to_string().contains(&token.key), "{error}");
    }
}
