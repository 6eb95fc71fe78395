//! The harness: spawn_app() and the test app (`helpers`), the consumers' helpers, the real
//! binary as a child process (`binary`), a TCP proxy for faults, a throwaway PKI.

pub mod binary;
pub mod consumer_helpers;
pub mod helpers;
pub mod pki;
pub mod proxy;
