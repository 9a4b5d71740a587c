//! Timestamps written into JSON as chrono writes them (RFC 3339, UTC, `Z`, the fraction in 0,
//! 3, 6 or 9 digits as needed), without going through `fmt`: chrono's `Serialize` formats
//! through `collect_str`, and serde_json escapes what `fmt` hands it one character at a time
//! (a tenth of a pull's instructions, callgrind, for two timestamps a row). For a field:
//! `#[serde(serialize_with = "crate::rfc3339::ser")]` (`ser_opt` for an `Option`).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `t` as chrono's `Serialize` writes it.
pub fn ser<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(t, &mut buf) {
        // Only ASCII digits and punctuation were written.
        Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
        None => serde::Serialize::serialize(t, s),
    }
}

/// An optional timestamp: `null` or as [`ser`].
pub fn ser_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser(t, s),
        None => s.serialize_none(),
    }
}

/// Writes `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z`; `None` for what chrono writes otherwise (a
/// year outside 0..=9999, a leap second), left to chrono.
fn write(t: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    fn digits(buf: &mut [u8], mut n: u32) {
        for b in buf.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    digits(&mut buf[0..4], year as u32);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], t.second());
    let mut n = 19;
    let (fraction, width) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if width > 0 {
        buf[n] = b'.';
        digits(&mut buf[n + 1..n + 1 + width], fraction);
        n += 1 + width;
    }
    buf[n] = b'Z';
    Some(n + 1)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    #[derive(serde::Serialize)]
    struct Ours {
        #[serde(serialize_with = "super::ser")]
        t: DateTime<Utc>,
        #[serde(serialize_with = "super::ser_opt")]
        o: Option<DateTime<Utc>>,
    }

    #[derive(serde::Serialize)]
    struct Chronos {
        t: DateTime<Utc>,
        o: Option<DateTime<Utc>>,
    }

    fn same(t: DateTime<Utc>, o: Option<DateTime<Utc>>) {
        let ours = serde_json::to_string(&Ours { t, o }).expect("ours");
        let chrono = serde_json::to_string(&Chronos { t, o }).expect("chrono");
        assert_eq!(ours, chrono, "{t:?} {o:?}");
    }

    /// Seeded timestamps over years 0 to 9999 with every kind of fraction, and the edges,
    /// written exactly as chrono writes them.
    #[test]
    fn writes_what_chrono_writes() {
        let seed: u64 = 20261207;
        println!("seed {seed}");
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let lo = Utc
            .with_ymd_and_hms(0, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid time")
            .timestamp();
        let hi = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .single()
            .expect("a valid time")
            .timestamp();
        for i in 0..20_000u64 {
            let secs = lo + (next() % (hi - lo) as u64) as i64;
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            let t = DateTime::from_timestamp(secs, nanos).expect("in range");
            same(t, (i % 3 == 0).then_some(t));
        }
        for t in [
            Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0)
                .single()
                .expect("a valid time"),
            DateTime::from_timestamp(0, 1).expect("a valid time"),
            DateTime::from_timestamp(-62_167_219_200, 0).expect("a valid time"), // 0000-01-01
            DateTime::from_timestamp(-62_167_219_201, 0).expect("a valid time"), // year -1: chrono's own
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0)
                .single()
                .expect("a valid time"), // chrono's own
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).expect("a valid time"), // a leap second
        ] {
            same(t, None);
        }
    }
}
