//! Minimal logging to standard error: one line per event, with a UTC timestamp and a level.
//! Only start-up, shutdown and changes of state are logged, never individual requests.

use std::time::{SystemTime, UNIX_EPOCH};

/// Writes one log line.
pub fn write(level: &str, message: std::fmt::Arguments<'_>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    eprintln!("{} {level:<5} {message}", crate::common::date::timestamp(now.as_secs()));
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::telemetry::log::write("INFO", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::telemetry::log::write("WARN", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::telemetry::log::write("ERROR", format_args!($($arg)*)) };
}
