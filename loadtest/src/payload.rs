//! The chat text a publisher sends (or, in a plugin's room, the data of its
//! `RoomSend`): valid UTF-8 of exactly the configured size, carrying the
//! publisher, its message counter and the send time.
//!
//! Layout: `{publisher}:{counter}:{sent_ns}:` in decimal, then `x` up to the
//! size, e.g. `3:1207:1763791234567890123:xxxxxxxx`.

use std::fmt::Write as _;

/// The server's default longest chat text (`max_text_len`), bytes.
pub const MAX_SIZE: usize = tavern::config::DEFAULT_MAX_TEXT_LEN;
/// Digits of the largest send time (`u64::MAX` nanoseconds).
const TIME_DIGITS: usize = 20;

/// What a chat text carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The publisher's index in the run's schedule.
    pub publisher: u64,
    /// The publisher's message counter (its `k` in the schedule).
    pub counter: u64,
    /// Wall-clock nanoseconds when the message was written.
    pub sent_ns: u64,
}

/// The smallest size that holds any stamp whose publisher and counter are at
/// most the given values.
pub fn min_size(max_publisher: u64, max_counter: u64) -> usize {
    digits(max_publisher) + digits(max_counter) + TIME_DIGITS + 3
}

/// Checks that `size` holds every stamp of a run and fits the server's limit.
///
/// # Errors
/// The size is too small or above [`MAX_SIZE`].
pub fn validate_size(size: usize, max_publisher: u64, max_counter: u64) -> anyhow::Result<()> {
    let min = min_size(max_publisher, max_counter);
    anyhow::ensure!(
        size >= min,
        "--size {size} is too small: each text carries its publisher, counter and send time, \
         which need up to {min} bytes in this run"
    );
    anyhow::ensure!(
        size <= MAX_SIZE,
        "--size {size} is above the server's default max_text_len of {MAX_SIZE} bytes"
    );
    Ok(())
}

/// Writes the text for `stamp` into `text` (cleared first), padded to `size` bytes.
///
/// # Errors
/// The stamp does not fit in `size` bytes.
pub fn write(text: &mut String, size: usize, stamp: Stamp) -> anyhow::Result<()> {
    text.clear();
    write!(text, "{}:{}:{}:", stamp.publisher, stamp.counter, stamp.sent_ns)?;
    anyhow::ensure!(text.len() <= size, "stamp {stamp:?} does not fit in {size} bytes");
    let padding = size - text.len();
    text.extend(std::iter::repeat_n('x', padding));
    Ok(())
}

/// Reads the stamp back from the bytes of a chat text or a room event's
/// data; `None` for bytes this tool did not write. One pass over the
/// stamp's bytes (it runs once per delivery, in the generator's hottest
/// loop): three decimal numbers, each ended by `:`.
pub fn parse(bytes: &[u8]) -> Option<Stamp> {
    let mut rest = bytes;
    let mut numbers = [0_u64; 3];
    for number in &mut numbers {
        (*number, rest) = decimal(rest)?;
    }
    let [publisher, counter, sent_ns] = numbers;
    Some(Stamp {
        publisher,
        counter,
        sent_ns,
    })
}

/// Most decimal digits that always fit a `u64`, so need no overflow check.
const SAFE_DIGITS: usize = 19;

/// A decimal number ended by `:` at the start of `bytes`, and what follows the `:`.
fn decimal(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let end = bytes.iter().position(|byte| !byte.is_ascii_digit())?;
    let (digits, rest) = bytes.split_at(end);
    let rest = rest.strip_prefix(b":")?;
    let digit = |byte: &u8| u64::from(byte - b'0');
    let value = match digits.len() {
        0 => return None,
        1..=SAFE_DIGITS => digits.iter().fold(0, |value: u64, byte| value * 10 + digit(byte)),
        _ => digits
            .iter()
            .try_fold(0, |value: u64, byte| value.checked_mul(10)?.checked_add(digit(byte)))?,
    };
    Some((value, rest))
}

/// Decimal digits of `value`.
fn digits(value: u64) -> usize {
    let mut digits = 1;
    let mut rest = value / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_it_did_not_write_are_refused() {
        for text in [
            "",
            "1:2:3",
            "1:2:",
            ":2:3:",
            "1:x:3:",
            "1:2:3x:",
            "99999999999999999999:1:1:",
            "1:2:-3:",
            "18446744073709551616:1:1:",
        ] {
            assert_eq!(parse(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(
            parse(b"1:2:3:"),
            Some(Stamp {
                publisher: 1,
                counter: 2,
                sent_ns: 3
            })
        );
    }

    #[test]
    fn round_trips_at_exactly_the_size() {
        let stamp = Stamp {
            publisher: 42,
            counter: 1207,
            sent_ns: 1_763_791_234_567_890_123,
        };
        let mut text = String::new();
        for size in [min_size(42, 1207), 64, 1024] {
            write(&mut text, size, stamp).unwrap();
            assert_eq!(text.len(), size);
            assert_eq!(parse(text.as_bytes()), Some(stamp));
        }
        assert!(text.starts_with("42:1207:1763791234567890123:xxx"));
    }

    #[test]
    fn the_minimum_holds_the_largest_stamp() {
        let stamp = Stamp {
            publisher: 999,
            counter: 99_999,
            sent_ns: u64::MAX,
        };
        let mut text = String::new();
        let min = min_size(999, 99_999);
        write(&mut text, min, stamp).unwrap();
        assert_eq!(text.len(), min);
        assert!(write(&mut text, min - 1, stamp).is_err());
    }

    #[test]
    fn validates_the_size() {
        assert!(validate_size(64, 9, 100_000).is_ok());
        assert!(validate_size(20, 9, 100_000).is_err());
        assert!(validate_size(1025, 9, 100_000).is_err());
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(u64::MAX), 20);
    }

    #[test]
    fn foreign_texts_do_not_parse() {
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(b"1:2:3"), None);
        assert_eq!(parse(b"a:2:3:x"), None);
        assert_eq!(parse(b"1:2:3:").map(|s| s.sent_ns), Some(3));
        assert_eq!(parse(b"1:2:3:\xff\x00").map(|s| s.counter), Some(2));
    }

    #[test]
    fn reads_every_width_up_to_the_largest() {
        for value in [
            0,
            9,
            10,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            u64::MAX,
        ] {
            let text = format!("{value}:{value}:{value}:");
            let stamp = Stamp {
                publisher: value,
                counter: value,
                sent_ns: value,
            };
            assert_eq!(parse(text.as_bytes()), Some(stamp), "{text}");
        }
    }
}
