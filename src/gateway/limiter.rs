//! Rate limits: per client address before anything else, per source after verification.
//! Both read the gateway's injected [`Clock`] (tests move it instead of sleeping).

use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RateLimit;
use crate::telemetry::{names, Telemetry};
use crate::verify::Clock;

/// governor's view of the gateway's clock: the time [`Clock::monotonic`] says has passed.
#[derive(Debug, Clone)]
pub struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

type NoOp = governor::middleware::NoOpMiddleware<Duration>;
type KeyedLimiter = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, LimiterClock, NoOp>;
type DirectLimiter =
    RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, LimiterClock, NoOp>;

/// How long until `not_until` allows a request, on `clock`.
fn wait(not_until: governor::NotUntil<Duration>, clock: &LimiterClock) -> Duration {
    use governor::clock::Clock as _;
    not_until.wait_time_from(clock.now())
}

/// The per-client limiter, with a bounded key map.
pub struct ClientLimiter {
    limiter: KeyedLimiter,
    clock: LimiterClock,
    max_tracked: usize,
}

/// IPv6 clients are limited per /64: one host usually holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Where clients are lumped once `max_tracked_clients` distinct ones are being tracked.
const OVERFLOW_KEY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl ClientLimiter {
    pub(super) fn new(rl: RateLimit, max_tracked: usize, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        ClientLimiter {
            limiter: RateLimiter::dashmap_with_clock(quota(rl), clock.clone()),
            clock,
            max_tracked,
        }
    }

    /// `Err(wait)` when the client is over its limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut key = client_key(ip);
        if self.limiter.len() >= self.max_tracked {
            self.limiter.retain_recent();
            if self.limiter.len() >= self.max_tracked {
                key = OVERFLOW_KEY;
            }
        }
        self.limiter
            .check_key(&key)
            .map_err(|not_until| wait(not_until, &self.clock))
    }

    /// Forgets clients whose buckets are full again; run periodically.
    pub fn sweep(&self, tel: &Telemetry) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        tel.gauge(names::TRACKED_CLIENTS, &[])
            .set(self.limiter.len() as f64);
    }
}

fn quota(rl: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(rl.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rl.burst).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

/// A source's limiter: one bucket for everything the source sends.
pub struct SourceLimiter {
    limiter: DirectLimiter,
    clock: LimiterClock,
}

impl SourceLimiter {
    pub(super) fn new(rl: RateLimit, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        SourceLimiter {
            limiter: RateLimiter::direct_with_clock(quota(rl), clock.clone()),
            clock,
        }
    }

    /// `Err(wait)` when the source is over its limit.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| wait(not_until, &self.clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::ManualClock;

    /// Limits refill on the gateway's clock: a client over its burst waits the time the
    /// limiter names, on that clock, and no longer; IPv6 clients share a bucket per /64.
    #[test]
    fn limits_refill_on_the_injected_clock() {
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        let rl = RateLimit {
            per_second: 2,
            burst: 2,
        };
        let clients = ClientLimiter::new(rl, 100, clock.clone());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(clients.check(a).is_ok());
        assert!(clients.check(same_64).is_ok());
        let wait = clients.check(a).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        clock.advance(wait - Duration::from_millis(1));
        assert!(clients.check(a).is_err(), "not before the wait it named");
        clock.advance(Duration::from_millis(1));
        assert!(clients.check(a).is_ok());

        let source = SourceLimiter::new(rl, clock.clone());
        assert!(source.check().is_ok() && source.check().is_ok());
        assert_eq!(source.check(), Err(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(500));
        assert!(source.check().is_ok());
    }
}
