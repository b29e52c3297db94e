//! The one calendar routine: Unix time to a civil date, for the log's timestamps and the
//! `Date` of the 408 the listener leaves on a slow connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A Unix time split into date and time of day (UTC, proleptic Gregorian calendar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: u64,
    month: u64,
    day: u64,
    /// 0 for Thursday, 1 January 1970's weekday.
    weekday: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Civil {
    /// Days to a civil date after Howard Hinnant's public-domain algorithm, for dates from 1970 on.
    fn of(secs: u64) -> Civil {
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let z = days + 719_468;
        let (era, doe) = (z / 146_097, z % 146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Civil { year, month, day, weekday: days % 7, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60 }
    }
}

fn since_epoch(now: SystemTime) -> Duration {
    now.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `now` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, into a
/// fixed buffer.
pub fn http_date(now: SystemTime) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let c = Civil::of(since_epoch(now).as_secs());
    let digits = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[c.weekday as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&digits(c.day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(c.month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&digits(c.year / 100));
    out[14..16].copy_from_slice(&digits(c.year % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&digits(c.hour));
    out[19] = b':';
    out[20..22].copy_from_slice(&digits(c.minute));
    out[22] = b':';
    out[23..25].copy_from_slice(&digits(c.second));
    out[25..].copy_from_slice(b" GMT");
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
pub fn timestamp(secs: u64) -> String {
    let c = Civil::of(secs);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time since the Unix epoch.
pub fn timestamp_millis(since_epoch: Duration) -> String {
    let c = Civil::of(since_epoch.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = |secs| std::str::from_utf8(&http_date(UNIX_EPOCH + Duration::from_secs(secs))).map(String::from);
        // RFC 9110 §5.6.7's example.
        assert_eq!(at(784_111_777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400).unwrap(), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799).unwrap(), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_795_435_200), "2026-11-23T12:00:00Z");
        let millis = Duration::from_millis(1_795_435_200_042);
        assert_eq!(timestamp_millis(millis), "2026-11-23T12:00:00.042Z");
    }
}
