//! Who may talk to the server (docs/decisions.md OP-7): the bind address policy and the bearer
//! token. Loopback needs nothing; any other address exposes arbitrary command execution
//! to whoever reaches the port, so it is refused unless a token is configured. Once a
//! token is configured it is required on every endpoint but `/health`, whatever the
//! address.

use std::net::SocketAddr;

use crate::error::{Error, Result};

pub const TOKEN_ENV: &str = "AGENT_EXEC_SERVE_TOKEN";

/// The token from `--token-file` (which wins, being explicit) or the environment.
/// Surrounding whitespace is trimmed so that `echo secret > file` works; an empty token
/// would accept `Bearer ` and is refused.
pub fn load_token(token_file: Option<&str>) -> Result<Option<String>> {
    let (token, source) = match token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("read token file {path}"), e))?;
            (text, format!("token file {path}"))
        }
        None => match std::env::var(TOKEN_ENV) {
            Ok(text) if !text.is_empty() => (text, format!("${TOKEN_ENV}")),
            _ => return Ok(None),
        },
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::internal(format!("{source} holds an empty token")));
    }
    Ok(Some(token.to_string()))
}

/// Refuses a non-loopback bind without a token, before anything is bound.
pub fn check_exposure(addr: &SocketAddr, token: Option<&str>) -> Result<()> {
    let loopback = match addr {
        SocketAddr::V4(v4) => v4.ip().is_loopback(),
        SocketAddr::V6(v6) => v6.ip().is_loopback() || v6.ip().to_ipv4_mapped().is_some_and(|ip| ip.is_loopback()),
    };
    if loopback || token.is_some() {
        return Ok(());
    }
    Err(Error::internal(format!(
        "refusing to serve on non-loopback address {addr} without a token: anyone who can reach it could run \
         commands; set ${TOKEN_ENV} or pass --token-file"
    )))
}

/// Does the `Authorization` header value carry the token? The comparison takes the same
/// time wherever the first difference is, so response timing does not leak the token.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret enough to hide (it is visible on the wire anyway); the
    // content is compared without an early exit.
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_policy() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(check_exposure(&addr("127.0.0.1:1"), None).is_ok());
        assert!(check_exposure(&addr("127.9.9.9:1"), None).is_ok());
        assert!(check_exposure(&addr("[::1]:1"), None).is_ok());
        assert!(check_exposure(&addr("[::ffff:127.0.0.1]:1"), None).is_ok());
        assert!(check_exposure(&addr("0.0.0.0:1"), None).is_err());
        assert!(check_exposure(&addr("[::]:1"), None).is_err());
        assert!(check_exposure(&addr("10.1.2.3:1"), None).is_err());
        assert!(check_exposure(&addr("0.0.0.0:1"), Some("t")).is_ok());
    }

    #[test]
    fn bearer_check() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Bearer s3creT"), "s3cret"));
        assert!(!authorized(Some("bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer "), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
