//! The page's sessions and one-time tickets, kept in memory only: random
//! 256-bit tokens with an expiry, compared in constant time. A restart ends
//! every session (the page asks for the key again). Time is passed in, so the
//! expiries are tested without waiting.

use std::sync::Mutex;
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
}

impl UiTokens {
    /// A new session token, valid for [`SESSION_LIFETIME`] from `now`.
    pub(crate) fn open_session(&self, now: Instant) -> Result<String, getrandom::Error> {
        issue(&self.sessions, now + SESSION_LIFETIME, now)
    }

    /// Whether `presented` is a session that has not expired at `now`.
    pub(crate) fn session_valid(&self, presented: &str, now: Instant) -> bool {
        let sessions = lock(&self.sessions);
        sessions.iter().any(|token| token.expires > now && token.matches(presented))
    }

    /// Ends the session `presented`, if there is one.
    pub(crate) fn end_session(&self, presented: &str) {
        lock(&self.sessions).retain(|token| !token.matches(presented));
    }

    /// A new one-time ticket, valid for [`TICKET_LIFETIME`] from `now`.
    pub(crate) fn issue_ticket(&self, now: Instant) -> Result<String, getrandom::Error> {
        issue(&self.tickets, now + TICKET_LIFETIME, now)
    }

    /// Whether `presented` is a ticket not expired at `now`; a ticket is
    /// gone once presented, valid or not.
    pub(crate) fn redeem_ticket(&self, presented: &str, now: Instant) -> bool {
        let mut tickets = lock(&self.tickets);
        let Some(at) = tickets.iter().position(|token| token.matches(presented)) else { return false };
        tickets.swap_remove(at).expires > now
    }
}

impl Token {
    fn matches(&self, presented: &str) -> bool {
        bool::from(self.value.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Adds a fresh token expiring at `expires` to `tokens`, dropping the expired
/// ones and, past [`MAX_TOKENS`], the oldest.
fn issue(tokens: &Mutex<Vec<Token>>, expires: Instant, now: Instant) -> Result<String, getrandom::Error> {
    let value = random_token()?;
    let mut tokens = lock(tokens);
    tokens.retain(|token| token.expires > now);
    if tokens.len() >= MAX_TOKENS {
        tokens.remove(0);
    }
    tokens.push(Token { value: value.clone(), expires });
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

    #[test]
    fn a_session_is_valid_until_it_expires_or_is_ended() {
        let tokens = UiTokens::default();
        let start = Instant::now();
        let session = tokens.open_session(start).unwrap();
        assert_eq!(session.len(), 64, "256 bits, hex");
        let cases = [
            (&session[..], start, true),
            (&session[..], start + SESSION_LIFETIME - Duration::from_secs(1), true),
            (&session[..], start + SESSION_LIFETIME, false),
            ("", start, false),
            (&session[..63], start, false),
        ];
        for (presented, at, valid) in cases {
            assert_eq!(tokens.session_valid(presented, at), valid, "{presented:?} at +{:?}", at - start);
        }
        tokens.end_session(&session);
        assert!(!tokens.session_valid(&session, start));
    }

    #[test]
    fn a_ticket_works_once_and_only_within_its_minute() {
        let tokens = UiTokens::default();
        let start = Instant::now();
        let ticket = tokens.issue_ticket(start).unwrap();
        assert!(tokens.redeem_ticket(&ticket, start + Duration::from_secs(59)));
        assert!(!tokens.redeem_ticket(&ticket, start + Duration::from_secs(59)), "single use");
        let late = tokens.issue_ticket(start).unwrap();
        assert!(!tokens.redeem_ticket(&late, start + TICKET_LIFETIME), "expired");
        assert!(!tokens.redeem_ticket(&late, start), "an expired ticket presented is gone");
        assert!(!tokens.session_valid(&tokens.issue_ticket(start).unwrap(), start), "a ticket is no session");
    }

    #[test]
    fn tokens_are_bounded_and_the_oldest_goes_first() {
        let tokens = UiTokens::default();
        let now = Instant::now();
        let first = tokens.open_session(now).unwrap();
        let second = tokens.open_session(now).unwrap();
        for _ in 2..MAX_TOKENS {
            tokens.open_session(now).unwrap();
        }
        assert!(tokens.session_valid(&first, now));
        tokens.open_session(now).unwrap();
        assert!(!tokens.session_valid(&first, now));
        assert!(tokens.session_valid(&second, now));
    }
}
