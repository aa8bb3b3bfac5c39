//! Parsing of the human-friendly values used in flags, variables and the config file.

use std::time::Duration;

/// Parses a byte size such as `50mb`, `512kb`, `1gb` or a plain number of bytes.
///
/// Units are binary multiples (`kb` = 1024 bytes), as in the original Node.js tool's body parser.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);

    let multiplier: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "kb" | "k" | "kib" => 1024.0,
        "mb" | "m" | "mib" => 1024.0 * 1024.0,
        "gb" | "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "invalid size \"{text}\": unknown unit \"{other}\" (use b, kb, mb or gb)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size \"{text}\": expected a number such as 50mb"))?;
    Ok((value * multiplier) as usize)
}

/// Parses a duration: a plain integer is milliseconds (as the original tool's variables are);
/// `ms`, `s`, `m` and `h` suffixes are accepted too.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);

    let value: f64 = number.parse().map_err(|_| {
        format!("invalid duration \"{text}\": expected milliseconds or a value such as 30s")
    })?;
    let seconds = match unit.trim() {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration \"{text}\": unknown unit \"{other}\" (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a boolean the way environment variables usually spell it.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("invalid boolean \"{text}\": use true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("50mb"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size(" 2gb "), Ok(2 * 1024 * 1024 * 1024));
    }

    #[test]
    fn size_rejects_unknown_unit() {
        let error = parse_size("5tb").unwrap_err();
        assert!(error.contains("unknown unit"), "{error}");
        assert!(parse_size("mb").is_err());
    }

    #[test]
    fn durations_default_to_milliseconds() {
        assert_eq!(parse_duration("30000"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }
}
