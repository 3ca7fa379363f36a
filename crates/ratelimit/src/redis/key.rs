//! How a limiter key becomes a Redis key.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

/// A key the [`RedisStore`](super::RedisStore) can rate-limit: it writes itself as the bytes that
/// follow the store's prefix in the Redis key.
///
/// Two keys that should share a limit must write the same bytes, and two that should not must
/// write different bytes. Redis keys are binary-safe, so any bytes are fine, including bytes taken
/// from a request (a header value): the key is sent as one bulk string argument, never
/// interpreted as a command.
///
/// Implemented for `()` (no suffix: the key is the prefix alone, for direct limiters), strings,
/// byte strings, integers, IP and socket addresses (their `Display` form), `http` header values,
/// and references and smart pointers to these. Implement it for your own key types.
///
/// # Example
///
/// ```
/// use resile_ratelimit::redis::RedisKey;
///
/// struct Tenant {
///     id: u64,
/// }
///
/// impl RedisKey for Tenant {
///     fn write_key(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(b"tenant:");
///         self.id.write_key(out);
///     }
/// }
///
/// let mut out = Vec::new();
/// Tenant { id: 42 }.write_key(&mut out);
/// assert_eq!(out, b"tenant:42");
/// ```
pub trait RedisKey {
    /// Appends this key's bytes to `out`.
    fn write_key(&self, out: &mut Vec<u8>);
}

impl RedisKey for () {
    #[inline]
    fn write_key(&self, _out: &mut Vec<u8>) {}
}

impl RedisKey for str {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for String {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for [u8] {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> RedisKey for [u8; N] {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for Vec<u8> {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for bytes::Bytes {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for http::HeaderValue {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

macro_rules! display_key {
    ($($t:ty),* $(,)?) => {$(
        impl RedisKey for $t {
            #[inline]
            fn write_key(&self, out: &mut Vec<u8>) {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

display_key!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, char, IpAddr, Ipv4Addr,
    Ipv6Addr, SocketAddr,
);

impl<T: RedisKey + ?Sized> RedisKey for &T {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<T: RedisKey + ?Sized> RedisKey for Box<T> {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<T: RedisKey + ?Sized> RedisKey for Arc<T> {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<T: RedisKey + ?Sized> RedisKey for Rc<T> {
    #[inline]
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

#[cfg(test)]
mod tests {
    use super::RedisKey;
    use std::net::{IpAddr, SocketAddr};

    fn key<K: RedisKey + ?Sized>(k: &K) -> Vec<u8> {
        let mut out = b"p:".to_vec();
        k.write_key(&mut out);
        out
    }

    #[test]
    fn keys_write_their_bytes_after_the_prefix() {
        assert_eq!(key(&()), b"p:");
        assert_eq!(key("a b"), b"p:a b");
        assert_eq!(key(&String::from("x")), b"p:x");
        assert_eq!(key(&b"\x00\xff"[..]), b"p:\x00\xff");
        assert_eq!(key(&-12i64), b"p:-12");
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(key(&ip), b"p:2001:db8::1");
        let sa: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert_eq!(key(&sa), b"p:192.0.2.1:80");
        let hv = http::HeaderValue::from_static("tok");
        assert_eq!(key(&hv), b"p:tok");
        assert_eq!(key(&std::sync::Arc::<str>::from("arc")), b"p:arc");
    }
}
