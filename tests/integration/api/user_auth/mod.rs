//! Verified user identity (`USER_AUTH=jwt`, docs/design.md §3): every call that acts for a user
//! (join on both paths, confirm, cancel, rewards) refuses each forged, expired, foreign or
//! malformed token with the right code and writes nothing, in MySQL or in Redis; the rightful user
//! still can; keys rotate without a restart; a JWKS URL that hangs holds no request; `firstcome
//! token` signs what the service accepts and refuses what it cannot sign; a user's participation
//! is read by that user or an admin, the list by an admin only.

mod attacks;
mod keys;
mod reads;
mod token;
