//! The Lua script, the commands that run it, and the parsing of its reply.

use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisResult, Script, ServerErrorKind, Value};

use super::error::UnexpectedReply;
use crate::gcra::{Decision, Quota};

/// The GCRA script (see `gcra.lua` beside this file).
pub(crate) const SOURCE: &str = include_str!("gcra.lua");

/// The script with its SHA-1, computed once per store.
pub(crate) fn script() -> Script {
    Script::new(SOURCE)
}

/// One call of the script.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// Take `cost` ns of cells if they conform within `max_wait` ns.
    Reserve { cost: u64, max_wait: u64 },
    /// Give back `give_back` ns of unused leased cells, then take as many whole cells as conform
    /// now, from `least` to `most` ns, or else `least` if it conforms within `max_wait` ns.
    Lease {
        give_back: u64,
        least: u64,
        most: u64,
        max_wait: u64,
    },
    /// Give back `cost` ns of cells.
    Release { cost: u64 },
    /// Admit nothing for `delay` ns, then refill gradually.
    Pause { delay: u64 },
}

/// The command for `op` on `key`: `EVALSHA sha 1 key ...`, or `EVAL source 1 key ...` when
/// `source` is set (after a `NOSCRIPT`).
fn command(script: &Script, source: bool, key: &[u8], quota: &Quota, op: Op) -> Cmd {
    let mut cmd = Cmd::with_capacity(11, 112 + key.len() + if source { SOURCE.len() } else { 0 });
    if source {
        cmd.arg("EVAL").arg(SOURCE);
    } else {
        cmd.arg("EVALSHA").arg(script.get_hash());
    }
    cmd.arg(1)
        .arg(key)
        .arg(match op {
            Op::Reserve { .. } => "r",
            Op::Lease { .. } => "a",
            Op::Release { .. } => "l",
            Op::Pause { .. } => "p",
        })
        .arg(quota.emission_interval_nanos())
        .arg(quota.emission_interval_nanos() + quota.tolerance_nanos());
    match op {
        Op::Reserve { cost, max_wait } => {
            cmd.arg(cost).arg(max_wait);
        }
        Op::Lease {
            give_back,
            least,
            most,
            max_wait,
        } => {
            cmd.arg(give_back).arg(least).arg(most).arg(max_wait);
        }
        Op::Release { cost } => {
            cmd.arg(cost);
        }
        Op::Pause { delay } => {
            cmd.arg(delay);
        }
    }
    cmd
}

/// Runs `op` on `key`: one `EVALSHA` round trip; if the server does not have the script cached
/// (`NOSCRIPT`: first use, or after a restart or `SCRIPT FLUSH`), a second one with `EVAL`, which
/// also caches it.
pub(crate) async fn run<C>(
    conn: &mut C,
    script: &Script,
    key: &[u8],
    quota: &Quota,
    op: Op,
) -> RedisResult<Value>
where
    C: redis::aio::ConnectionLike,
{
    let sha = command(script, false, key, quota, op);
    match sha.query_async::<Value>(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            tracing::debug!(
                target: "resile_ratelimit::redis",
                "rate-limit script not cached on the server; sending it with EVAL"
            );
            command(script, true, key, quota, op)
                .query_async::<Value>(conn)
                .await
        }
        other => other,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// The decision in a reply to [`Op::Reserve`]: `{allowed, remaining, retry_after_ns,
/// reset_after_ns}`, checked against what the script can return.
pub(crate) fn decision(reply: &Value, quota: &Quota) -> Result<Decision, UnexpectedReply> {
    let (allowed, decision) = parse(reply, quota)?;
    match allowed {
        0 | 1 => Ok(decision),
        other => Err(UnexpectedReply::new(format!("allowed = {other}"))),
    }
}

/// The grant in a reply to [`Op::Lease`]: `{granted_ns, remaining, retry_after_ns,
/// reset_after_ns}`, with the decision for the request that asked (allowed iff cells were
/// granted). A grant is a whole number of cells between `least` and `most` ns.
pub(crate) fn grant(
    reply: &Value,
    quota: &Quota,
    least: u64,
    most: u64,
) -> Result<(u64, Decision), UnexpectedReply> {
    let (granted, decision) = parse(reply, quota)?;
    let t = quota.emission_interval_nanos();
    match u64::try_from(granted) {
        Ok(0) => Ok((0, decision)),
        Ok(g) if (least..=most).contains(&g) && g % t == 0 => Ok((g, decision)),
        _ => Err(UnexpectedReply::new(format!(
            "granted = {granted} (least {least}, most {most}, T {t})"
        ))),
    }
}

/// `{flag, remaining, retry_after_ns, reset_after_ns}`: the flag as it came (`allowed` gets
/// `flag != 0`) and the rest checked.
fn parse(reply: &Value, quota: &Quota) -> Result<(i64, Decision), UnexpectedReply> {
    let Value::Array(items) = reply else {
        return Err(UnexpectedReply::new(format!("not an array: {reply:?}")));
    };
    let [flag, remaining, retry_after, reset_after] = items.as_slice() else {
        return Err(UnexpectedReply::new(format!(
            "{} elements instead of 4",
            items.len()
        )));
    };
    let (Some(flag), Some(remaining), Some(retry_after), Some(reset_after)) = (
        int(flag),
        int(remaining),
        int(retry_after),
        int(reset_after),
    ) else {
        return Err(UnexpectedReply::new(format!(
            "non-integer element: {items:?}"
        )));
    };
    let burst = quota.burst().get();
    let remaining = u32::try_from(remaining)
        .ok()
        .filter(|r| *r <= burst)
        .ok_or_else(|| UnexpectedReply::new(format!("remaining = {remaining} (burst {burst})")))?;
    let nanos = |v: i64, what: &str| {
        u64::try_from(v)
            .map(Duration::from_nanos)
            .map_err(|_| UnexpectedReply::new(format!("{what} = {v}")))
    };
    Ok((
        flag,
        Decision {
            allowed: flag != 0,
            limit: burst,
            remaining,
            retry_after: nanos(retry_after, "retry_after")?,
            reset_after: nanos(reset_after, "reset_after")?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn q() -> Quota {
        Quota::per_second(NonZeroU32::new(10).unwrap())
    }

    #[test]
    fn a_well_formed_reply_is_a_decision() {
        let v = Value::Array(vec![
            Value::Int(1),
            Value::Int(9),
            Value::Int(0),
            Value::Int(100_000_000),
        ]);
        let d = decision(&v, &q()).unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: 10,
                remaining: 9,
                retry_after: Duration::ZERO,
                reset_after: Duration::from_millis(100),
            }
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let bad = [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![Value::Int(1); 3]),
            Value::Array(vec![Value::Int(1); 5]),
            Value::Array(vec![
                Value::Int(2),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
            ]),
            Value::Array(vec![
                Value::Int(1),
                Value::Int(11),
                Value::Int(0),
                Value::Int(0),
            ]),
            Value::Array(vec![
                Value::Int(1),
                Value::Int(-1),
                Value::Int(0),
                Value::Int(0),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(0),
                Value::Int(-5),
                Value::Int(0),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(i64::MIN),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::BulkString(b"0".to_vec()),
                Value::Int(0),
                Value::Int(0),
            ]),
        ];
        for v in bad {
            assert!(decision(&v, &q()).is_err(), "{v:?}");
        }
    }

    #[test]
    fn commands_carry_the_quota_in_nanoseconds() {
        let s = script();
        let cmd = command(
            &s,
            false,
            b"k",
            &q(),
            Op::Reserve {
                cost: 200_000_000,
                max_wait: 0,
            },
        );
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let expected: Vec<&[u8]> = vec![
            b"EVALSHA",
            s.get_hash().as_bytes(),
            b"1",
            b"k",
            b"r",
            b"100000000",
            b"1000000000",
            b"200000000",
            b"0",
        ];
        assert_eq!(args, expected);
        let cmd = command(&s, true, b"k", &q(), Op::Pause { delay: 5 });
        assert_eq!(cmd.args_iter().count(), 8);
    }

    /// Any reply a server (or something posing as one) could send.
    fn reply() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            Just(Value::Okay),
            any::<i64>().prop_map(Value::Int),
            (-3i64..20).prop_map(Value::Int),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::BulkString),
            any::<bool>().prop_map(Value::Boolean),
            any::<f64>().prop_map(Value::Double),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop::collection::vec(inner, 0..6).prop_map(Value::Array)
        })
    }

    proptest::proptest! {
        /// The stable twin of a fuzz target for the reply decoder: never a panic, and a decision
        /// only within what the script can return.
        #[test]
        fn any_reply_is_a_decision_within_bounds_or_a_typed_error(v in reply(), burst in 1u32..50) {
            let q = Quota::per_second(NonZeroU32::new(10).unwrap())
                .with_burst(NonZeroU32::new(burst).unwrap())
                .unwrap();
            if let Ok(d) = decision(&v, &q) {
                proptest::prop_assert!(d.remaining <= burst);
                proptest::prop_assert_eq!(d.limit, burst);
                let Value::Array(items) = &v else { unreachable!() };
                proptest::prop_assert_eq!(items.len(), 4);
            }
            // A lease reply: a grant is 0 or whole cells within what was asked.
            let t = q.emission_interval_nanos();
            if let Ok((g, d)) = grant(&v, &q, t, 4 * t) {
                proptest::prop_assert!(g == 0 || ((t..=4 * t).contains(&g) && g % t == 0));
                proptest::prop_assert_eq!(d.allowed, g > 0);
                proptest::prop_assert!(d.remaining <= burst);
            }
        }
    }
}
