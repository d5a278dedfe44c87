//! The page's sessions and one-time tickets, kept in memory only: random
//! 256-bit tokens with an expiry, compared in constant time. A restart ends
//! every session (the page asks for the key again), and so does a new key:
//! each token remembers the key in force when it was issued. Time and the key
//! are passed in, so the rules are tested without waiting or a daemon.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// How long a page session lasts from the moment it is granted.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a `meshctl ui` ticket may wait to be traded for a session.
pub(crate) const TICKET_LIFETIME: Duration = Duration::from_secs(60);
/// At most this many sessions (and tickets) are kept; the oldest goes first,
/// so a caller with the key cannot grow the daemon's memory without bound.
const MAX_TOKENS: usize = 64;

/// Every live session and ticket of the page.
#[derive(Default)]
pub(crate) struct UiTokens {
    sessions: Mutex<Vec<Token>>,
    tickets: Mutex<Vec<Token>>,
}

struct Token {
    value: String,
    expires: Instant,
    /// The key in force when it was issued; None under Tailscale identity auth alone.
    key: Option<Arc<str>>,
}

impl UiTokens {
    /// A new session token, valid for [`SESSION_LIFETIME`] from `now`.
    pub(crate) fn open_session(&self, now: Instant, key: Option<Arc<str>>) -> Result<String, getrandom::Error> {
        issue(&self.sessions, now + SESSION_LIFETIME, now, key)
    }

    /// Whether `presented` is a session that has not expired at `now`,
    /// issued under the key in force `key`.
    pub(crate) fn session_valid(&self, presented: &str, now: Instant, key: Option<&str>) -> bool {
        let sessions = lock(&self.sessions);
        sessions.iter().any(|token| token.live(now, key) && token.matches(presented))
    }

    /// Ends the session `presented`, if there is one.
    pub(crate) fn end_session(&self, presented: &str) {
        lock(&self.sessions).retain(|token| !token.matches(presented));
    }

    /// A new one-time ticket, valid for [`TICKET_LIFETIME`] from `now`.
    pub(crate) fn issue_ticket(&self, now: Instant, key: Option<Arc<str>>) -> Result<String, getrandom::Error> {
        issue(&self.tickets, now + TICKET_LIFETIME, now, key)
    }

    /// Whether `presented` is a ticket not expired at `now`, issued under
    /// the key in force `key`; a ticket is gone once presented, valid or not.
    pub(crate) fn redeem_ticket(&self, presented: &str, now: Instant, key: Option<&str>) -> bool {
        let mut tickets = lock(&self.tickets);
        let Some(at) = tickets.iter().position(|token| token.matches(presented)) else { return false };
        tickets.swap_remove(at).live(now, key)
    }
}

impl Token {
    fn live(&self, now: Instant, key: Option<&str>) -> bool {
        self.expires > now && self.key.as_deref() == key
    }

    fn matches(&self, presented: &str) -> bool {
        bool::from(self.value.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Adds a fresh token expiring at `expires` to `tokens`, dropping the expired
/// ones and, past [`MAX_TOKENS`], the oldest.
fn issue(
    tokens: &Mutex<Vec<Token>>,
    expires: Instant,
    now: Instant,
    key: Option<Arc<str>>,
) -> Result<String, getrandom::Error> {
    let value = random_token()?;
    let mut tokens = lock(tokens);
    tokens.retain(|token| token.expires > now);
    if tokens.len() >= MAX_TOKENS {
        tokens.remove(0);
    }
    tokens.push(Token { value: value.clone(), expires, key });
    Ok(value)
}

/// 32 bytes from the operating system's random source, hex-encoded.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn lock(tokens: &Mutex<Vec<Token>>) -> std::sync::MutexGuard<'_, Vec<Token>> {
    tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Option<&str> = Some("the-key");

    fn key() -> Option<Arc<str>> {
        KEY.map(Into::into)
    }

    #[test]
    fn a_session_is_valid_until_it_expires_or_is_ended() {
        let tokens = UiTokens::default();
        let start = Instant::now();
        let session = tokens.open_session(start, key()).unwrap();
        assert_eq!(session.len(), 64, "256 bits, hex");
        let cases = [
            (&session[..], start, true),
            (&session[..], start + SESSION_LIFETIME - Duration::from_secs(1), true),
            (&session[..], start + SESSION_LIFETIME, false),
            ("", start, false),
            (&session[..63], start, false),
        ];
        for (presented, at, valid) in cases {
            assert_eq!(tokens.session_valid(presented, at, KEY), valid, "{presented:?} at +{:?}", at - start);
        }
        tokens.end_session(&session);
        assert!(!tokens.session_valid(&session, start, KEY));
    }

    #[test]
    fn a_ticket_works_once_and_only_within_its_minute() {
        let tokens = UiTokens::default();
        let start = Instant::now();
        let ticket = tokens.issue_ticket(start, key()).unwrap();
        assert!(tokens.redeem_ticket(&ticket, start + Duration::from_secs(59), KEY));
        assert!(!tokens.redeem_ticket(&ticket, start + Duration::from_secs(59), KEY), "single use");
        let late = tokens.issue_ticket(start, key()).unwrap();
        assert!(!tokens.redeem_ticket(&late, start + TICKET_LIFETIME, KEY), "expired");
        assert!(!tokens.redeem_ticket(&late, start, KEY), "an expired ticket presented is gone");
        assert!(
            !tokens.session_valid(&tokens.issue_ticket(start, key()).unwrap(), start, KEY),
            "a ticket is no session"
        );
    }

    #[test]
    fn tokens_are_bounded_and_the_oldest_goes_first() {
        let tokens = UiTokens::default();
        let now = Instant::now();
        let first = tokens.open_session(now, key()).unwrap();
        let second = tokens.open_session(now, key()).unwrap();
        for _ in 2..MAX_TOKENS {
            tokens.open_session(now, key()).unwrap();
        }
        assert!(tokens.session_valid(&first, now, KEY));
        tokens.open_session(now, key()).unwrap();
        assert!(!tokens.session_valid(&first, now, KEY));
        assert!(tokens.session_valid(&second, now, KEY));
    }

    #[test]
    fn a_new_key_ends_the_sessions_and_tickets_of_the_old_one() {
        let tokens = UiTokens::default();
        let now = Instant::now();
        let session = tokens.open_session(now, key()).unwrap();
        let ticket = tokens.issue_ticket(now, key()).unwrap();
        assert!(!tokens.session_valid(&session, now, Some("a-new-key")));
        assert!(!tokens.session_valid(&session, now, None));
        assert!(!tokens.redeem_ticket(&ticket, now, Some("a-new-key")));
        assert!(tokens.session_valid(&session, now, KEY), "the old key's session, while that key is in force");
        let tailscale_only = tokens.open_session(now, None).unwrap();
        assert!(tokens.session_valid(&tailscale_only, now, None));
        assert!(!tokens.session_valid(&tailscale_only, now, KEY));
    }
}
