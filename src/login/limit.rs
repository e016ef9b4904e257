//! Per-account throttling of face login (NIST SP 800-63B §5.2.2: limit consecutive failed
//! attempts). After `free_failures` failures in a row, face login for that account pauses for
//! `first_pause`, doubling with each further failure up to `max_pause`; a success forgets the
//! account. Only face login pauses: the password is another module and keeps working.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitParams {
    pub free_failures: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for LimitParams {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_pause: Duration::from_secs(30),
            max_pause: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Record {
    failures: u32,
    paused_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LoginLimiter {
    params: LimitParams,
    accounts: HashMap<String, Record>,
}

impl LoginLimiter {
    pub fn new(params: LimitParams) -> Self {
        Self {
            params,
            accounts: HashMap::new(),
        }
    }

    /// Err(how long is left) while the account's face login is paused.
    pub fn check(&self, user: &str, now: Instant) -> Result<(), Duration> {
        match self.accounts.get(user).and_then(|r| r.paused_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// A face was refused (not recognised, spoof). Returns the pause it starts, if any.
    pub fn failed(&mut self, user: &str, now: Instant) -> Option<Duration> {
        let record = self.accounts.entry(user.to_string()).or_default();
        record.failures = record.failures.saturating_add(1);
        if record.failures < self.params.free_failures {
            return None;
        }
        // The free_failures-th failure pauses first_pause, each later one doubles it.
        let doublings = (record.failures - self.params.free_failures).min(31);
        let pause = self
            .params
            .first_pause
            .saturating_mul(1u32 << doublings)
            .min(self.params.max_pause);
        record.paused_until = Some(now + pause);
        Some(pause)
    }

    /// The account logged in by face: its failures are forgotten.
    pub fn succeeded(&mut self, user: &str) {
        self.accounts.remove(user);
    }

    pub fn failures(&self, user: &str) -> u32 {
        self.accounts.get(user).map_or(0, |r| r.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_free_failures_then_a_doubling_capped_pause() {
        let mut limit = LoginLimiter::new(LimitParams::default());
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(limit.failed("alice", t0), None);
        }
        assert!(limit.check("alice", t0).is_ok());
        // The fifth failure starts the first pause: the sixth attempt is refused.
        assert_eq!(limit.failed("alice", t0), Some(Duration::from_secs(30)));
        assert_eq!(limit.check("alice", t0), Err(Duration::from_secs(30)));
        assert!(
            limit.check("bob", t0).is_ok(),
            "other accounts are unaffected"
        );
        let t1 = t0 + Duration::from_secs(31);
        assert!(limit.check("alice", t1).is_ok());
        assert_eq!(limit.failed("alice", t1), Some(Duration::from_secs(60)));
        assert_eq!(limit.failed("alice", t1), Some(Duration::from_secs(120)));
        for _ in 0..20 {
            limit.failed("alice", t1);
        }
        assert_eq!(limit.check("alice", t1), Err(Duration::from_secs(15 * 60)));
        limit.succeeded("alice");
        assert!(limit.check("alice", t1).is_ok());
        assert_eq!(limit.failures("alice"), 0);
    }
}
