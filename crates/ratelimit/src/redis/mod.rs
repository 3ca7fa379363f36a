//! A [`Store`](crate::Store) on Redis: GCRA in one atomic Lua script on the server's clock.
