//! Exit codes (the monitoring-plugins convention, then sysexits.h).

pub const OK: u8 = 0;
pub const WARNING: u8 = 1;
pub const CRITICAL: u8 = 2;
pub const UNKNOWN: u8 = 3;
/// EX_USAGE
pub const USAGE: u8 = 64;
/// EX_CONFIG
pub const CONFIG: u8 = 78;
/// `explain` could not explain (API error, not found, forbidden).
pub const EXPLAIN_FAILED: u8 = 1;
