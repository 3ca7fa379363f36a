//! Shared helpers for resile's end-to-end tests: scripted HTTP servers on 127.0.0.1.
