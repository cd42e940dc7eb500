//! moment.js's `format()` in its default `en` locale, for `{{date 'fmt'}}` and
//! `{{commit_date 'fmt'}}`: metadata-action hands the format string to moment-timezone, so the
//! same string must give the same tag here.
//!
//! The format is split as moment splits it: `[…]` is literal text, a `\` makes the token after
//! it literal, the locale formats (`LT`, `LTS`, `L`…`LLLL`, `l`…`llll`) are expanded first, and
//! then the token grammar is matched left to right with moment's own alternatives and their
//! order (so `DDDo` is one token and `DDo` is `DD` then `o`). Every token moment knows is
//! implemented, so a letter is printed literally exactly when moment prints it literally.
//! The tables are the `en` locale's: English month and day names, `1st`/`2nd` ordinals, weeks
//! that start on Sunday with week 1 holding 1 January (`w`, `gggg`), ISO weeks for `W`/`GGGG`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The `en` locale's long date formats (moment's `defaultLongDateFormat`); the lower-case ones
/// are derived by moment from the upper-case ones (`MMMM`→`MMM`, `MM`→`M`, `DD`→`D`, `dddd`→`ddd`).
const LONG_FORMATS: &[(&str, &str)] = &[
    ("LTS", "h:mm:ss A"),
    ("LT", "h:mm A"),
    ("LLLL", "dddd, MMMM D, YYYY h:mm A"),
    ("LLL", "MMMM D, YYYY h:mm A"),
    ("LL", "MMMM D, YYYY"),
    ("L", "MM/DD/YYYY"),
    ("llll", "ddd, MMM D, YYYY h:mm A"),
    ("lll", "MMM D, YYYY h:mm A"),
    ("ll", "MMM D, YYYY"),
    ("l", "M/D/YYYY"),
];

/// moment's `en` ordinal: `1st`, `2nd`, `3rd`, `4th`, `11th`…`13th`, `21st`.
fn ordinal(n: i64) -> String {
    let suffix = if (n % 100) / 10 == 1 {
        "th"
    } else {
        match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

/// moment's `zeroFill`: at least `width` digits (never cut), `+` forced when asked.
fn zero_fill(n: i64, width: usize, force_sign: bool) -> String {
    let sign = if n < 0 {
        "-"
    } else if force_sign {
        "+"
    } else {
        ""
    };
    format!("{sign}{:0width$}", n.unsigned_abs())
}

/// The length of a bracketed literal at the start of `s` (`[` up to the first `]`, with no `[`
/// inside), as moment's `\[[^\[]*\]`.
fn bracket_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    (rest.as_bytes()[end] == b']').then_some(end + 2)
}

/// Expands the locale formats (moment's `expandFormat`), leaving brackets and `\`-escaped
/// tokens alone.
fn expand_locale(fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len());
    let mut rest = fmt;
    while let Some(c) = rest.chars().next() {
        if let Some(n) = bracket_len(rest) {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
            continue;
        }
        let (escaped, body) = match rest.strip_prefix('\\') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        if let Some((name, long)) = LONG_FORMATS.iter().find(|(n, _)| body.starts_with(*n)) {
            if escaped {
                out.push('\\');
                out.push_str(name);
            } else {
                out.push_str(long);
            }
            rest = &body[name.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of the token at the start of `s`, trying moment's alternatives in moment's order;
/// one character when none fits (moment's final `.`).
fn token_len(s: &str) -> usize {
    let b = s.as_bytes();
    let run = |c: u8| b.iter().take_while(|x| **x == c).count();
    let at = |i: usize| b.get(i).copied();
    let first = match at(0) {
        Some(c) => c,
        None => return 0,
    };
    match first {
        // `[Hh]mm(ss)?` comes first in moment's list.
        b'H' | b'h' if s[1..].starts_with("mm") => {
            if s[3..].starts_with("ss") {
                5
            } else {
                3
            }
        }
        b'M' if at(1) == Some(b'o') => 2,
        b'M' => run(b'M').min(4),
        b'D' if at(1) == Some(b'o') => 2,
        b'D' if s.starts_with("DDDo") => 4,
        b'D' => run(b'D').min(4),
        b'd' => match run(b'd') {
            1 if at(1) == Some(b'o') => 2,
            n => n.min(4),
        },
        // `w[o|w]?`: the character class holds `|` too, so `w|` is a token (that prints as
        // itself, having no formatter).
        b'w' | b'W' => match at(1) {
            Some(c) if c == b'o' || c == b'|' || c == first => 2,
            _ => 1,
        },
        b'Q' if at(1) == Some(b'o') => 2,
        b'N' => run(b'N').min(5),
        b'Y' => match run(b'Y') {
            n if n >= 6 => 6,
            5 => 5,
            4 => 4,
            2 | 3 => 2,
            _ => 1,
        },
        b'y' => match run(b'y') {
            1 if at(1) == Some(b'o') => 2,
            n => n.min(4),
        },
        b'g' | b'G' => match run(first) {
            n if n >= 5 => 5,
            4 => 4,
            2 | 3 => 2,
            _ => 1,
        },
        b'h' | b'H' | b'k' | b'm' | b's' | b'z' | b'Z' => run(first).min(2),
        b'S' => run(b'S').min(9),
        _ => s.chars().next().map_or(1, char::len_utf8),
    }
}

/// A locale week (`dow`: the first day of the week, 0 = Sunday; `doy`: week 1 is the week
/// holding 1 January + `7 + dow - doy - 1` days), as moment's `weekOfYear`: `(week, year)`.
fn week_of_year(date: Date, dow: i64, doy: i64) -> (i64, i64) {
    // Day of the year (0-based) on which week 1 of `year` starts; may be negative.
    let first_week_start = |year: i16| -> i64 {
        let fwd = 7 + dow - doy;
        let jan = Date::new(year, 1, fwd as i8).unwrap_or(date);
        let weekday = i64::from(jan.weekday().to_sunday_zero_offset());
        let fwdlw = (7 + weekday - dow).rem_euclid(7);
        -fwdlw + fwd - 1
    };
    let days_in_year =
        |year: i16| -> i64 { Date::new(year, 1, 1).map_or(365, |d| i64::from(d.days_in_year())) };
    let weeks_in = |year: i16| -> i64 {
        (days_in_year(year) - first_week_start(year) + first_week_start(year + 1)) / 7
    };
    let year = date.year();
    let week = (i64::from(date.day_of_year()) - first_week_start(year) - 1).div_euclid(7) + 1;
    if week < 1 {
        (week + weeks_in(year - 1), i64::from(year) - 1)
    } else if week > weeks_in(year) {
        (week - weeks_in(year), i64::from(year) + 1)
    } else {
        (week, i64::from(year))
    }
}

/// What one token prints, or `None` when moment has no formatter for it (it prints itself,
/// without any `\`).
fn render_token(tok: &str, z: &Zoned, at: Timestamp, abbreviation: &str) -> Option<String> {
    let year = i64::from(z.year());
    let month = i64::from(z.month());
    let day = i64::from(z.day());
    let doy = i64::from(z.day_of_year());
    let weekday = i64::from(z.weekday().to_sunday_zero_offset());
    let hour = i64::from(z.hour());
    let ms = i64::from(z.millisecond());
    let (week, week_year) = week_of_year(z.date(), 0, 6);
    let (iso_week, iso_year) = week_of_year(z.date(), 1, 4);
    let quarter = (month - 1) / 3 + 1;
    let h12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let k24 = if hour == 0 { 24 } else { hour };
    let offset = |sep: &str| {
        let secs = i64::from(z.offset().seconds());
        let minutes = secs.abs() / 60;
        let sign = if secs < 0 { '-' } else { '+' };
        format!("{sign}{:02}{sep}{:02}", minutes / 60, minutes % 60)
    };
    let month_name = MONTHS[(month - 1) as usize];
    let day_name = DAYS[weekday as usize];
    let am = hour < 12;
    Some(match tok {
        "M" => month.to_string(),
        "Mo" => ordinal(month),
        "MM" => zero_fill(month, 2, false),
        "MMM" => month_name[..3].to_string(),
        "MMMM" => month_name.to_string(),
        "Q" => quarter.to_string(),
        "Qo" => ordinal(quarter),
        "D" => day.to_string(),
        "Do" => ordinal(day),
        "DD" => zero_fill(day, 2, false),
        "DDD" => doy.to_string(),
        "DDDo" => ordinal(doy),
        "DDDD" => zero_fill(doy, 3, false),
        "d" | "e" => weekday.to_string(),
        "do" => ordinal(weekday),
        "dd" => day_name[..2].to_string(),
        "ddd" => day_name[..3].to_string(),
        "dddd" => day_name.to_string(),
        "E" => (if weekday == 0 { 7 } else { weekday }).to_string(),
        "w" => week.to_string(),
        "wo" => ordinal(week),
        "ww" => zero_fill(week, 2, false),
        "W" => iso_week.to_string(),
        "Wo" => ordinal(iso_week),
        "WW" => zero_fill(iso_week, 2, false),
        "Y" if year > 9999 => format!("+{year}"),
        "Y" => year.to_string(),
        "YY" => zero_fill(year.rem_euclid(100), 2, false),
        "YYYY" => zero_fill(year, 4, false),
        "YYYYY" => zero_fill(year, 5, false),
        "YYYYYY" => zero_fill(year, 6, true),
        "gg" => zero_fill(week_year.rem_euclid(100), 2, false),
        "gggg" => zero_fill(week_year, 4, false),
        "ggggg" => zero_fill(week_year, 5, false),
        "GG" => zero_fill(iso_year.rem_euclid(100), 2, false),
        "GGGG" => zero_fill(iso_year, 4, false),
        "GGGGG" => zero_fill(iso_year, 5, false),
        // The `en` eras: Anno Domini from year 1, so the era year is the year (zero-filled,
        // never cut, as moment's `zeroFill`).
        "N" | "NN" | "NNN" | "NNNNN" => (if year >= 1 { "AD" } else { "BC" }).to_string(),
        "NNNN" => (if year >= 1 {
            "Anno Domini"
        } else {
            "Before Christ"
        })
        .to_string(),
        "y" => era_year(year).to_string(),
        "yo" => ordinal(era_year(year)),
        "yy" => zero_fill(era_year(year), 2, false),
        "yyy" => zero_fill(era_year(year), 3, false),
        "yyyy" => zero_fill(era_year(year), 4, false),
        "A" => (if am { "AM" } else { "PM" }).to_string(),
        "a" => (if am { "am" } else { "pm" }).to_string(),
        "H" => hour.to_string(),
        "HH" => zero_fill(hour, 2, false),
        "h" => h12.to_string(),
        "hh" => zero_fill(h12, 2, false),
        "k" => k24.to_string(),
        "kk" => zero_fill(k24, 2, false),
        "hmm" => format!("{h12}{:02}", z.minute()),
        "hmmss" => format!("{h12}{:02}{:02}", z.minute(), z.second()),
        "Hmm" => format!("{hour}{:02}", z.minute()),
        "Hmmss" => format!("{hour}{:02}{:02}", z.minute(), z.second()),
        "m" => z.minute().to_string(),
        "mm" => zero_fill(i64::from(z.minute()), 2, false),
        "s" => z.second().to_string(),
        "ss" => zero_fill(i64::from(z.second()), 2, false),
        "S" => (ms / 100).to_string(),
        "SS" => zero_fill(ms / 10, 2, false),
        // moment keeps milliseconds only: `SSSS`… are the milliseconds followed by zeros.
        s if s.starts_with("SSS") => format!("{ms:03}{}", "0".repeat(s.len() - 3)),
        // moment-timezone's abbreviation for both (`UTC`, `JST`, `EST`, `CEST`, `+04`).
        "z" | "zz" => abbreviation.to_string(),
        "Z" => offset(":"),
        "ZZ" => offset(""),
        "X" => at.as_second().to_string(),
        "x" => at.as_millisecond().to_string(),
        _ => return None,
    })
}

/// Years before 1 AD count backwards in the `BC` era.
fn era_year(year: i64) -> i64 {
    if year >= 1 {
        year
    } else {
        1 - year
    }
}

/// Formats `at` in `zone` with a moment.js format string. `None` for an unknown zone.
pub fn format(at: Timestamp, fmt: &str, zone: &str) -> Option<String> {
    let tz = TimeZone::get(zone).ok()?;
    let abbreviation = tz.to_offset_info(at).abbreviation().to_string();
    let z = at.to_zoned(tz);
    let fmt = expand_locale(fmt);
    let mut out = String::new();
    let mut rest = fmt.as_str();
    while !rest.is_empty() {
        if let Some(n) = bracket_len(rest) {
            out.push_str(&rest[1..n - 1]);
            rest = &rest[n..];
            continue;
        }
        let (escaped, body) = match rest.strip_prefix('\\') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let n = token_len(body);
        let tok = &body[..n];
        rest = &body[n..];
        // JavaScript's `.` does not match line breaks, so moment drops them.
        if matches!(tok, "\n" | "\r" | "\u{2028}" | "\u{2029}") {
            continue;
        }
        match (escaped, render_token(tok, &z, at, &abbreviation)) {
            (false, Some(v)) => out.push_str(&v),
            // Not a token, or escaped: the text itself, without backslashes.
            _ => out.push_str(&tok.replace('\\', "")),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Expected values are moment's documented output (momentjs.com "Format" table and
    /// "Localized formats"), worked out by hand for the fixed dates.
    #[test]
    fn every_token_as_moment_prints_it() {
        // A Friday, the 10th day of 2020; US week 2, ISO week 2.
        let t = at("2020-01-10T00:30:05.123Z");
        let cases: &[(&str, &str)] = &[
            ("M Mo MM MMM MMMM", "1 1st 01 Jan January"),
            ("Q Qo", "1 1st"),
            ("D Do DD", "10 10th 10"),
            ("DDD DDDo DDDD", "10 10th 010"),
            ("d do dd ddd dddd", "5 5th Fr Fri Friday"),
            ("e E", "5 5"),
            ("w wo ww", "2 2nd 02"),
            ("W Wo WW", "2 2nd 02"),
            ("YY YYYY Y YYYYY YYYYYY", "20 2020 2020 02020 +002020"),
            ("gg gggg ggggg", "20 2020 02020"),
            ("GG GGGG GGGGG", "20 2020 02020"),
            ("N NN NNN NNNN NNNNN", "AD AD AD Anno Domini AD"),
            ("y yo yy yyy yyyy", "2020 2020th 2020 2020 2020"),
            ("A a", "AM am"),
            ("H HH h hh k kk", "0 00 12 12 24 24"),
            ("hmm hmmss Hmm Hmmss", "1230 123005 030 03005"),
            ("m mm s ss", "30 30 5 05"),
            (
                "S SS SSS SSSS SSSSSS SSSSSSSSS",
                "1 12 123 1230 123000 123000000",
            ),
            ("z zz Z ZZ", "UTC UTC +00:00 +0000"),
            ("X x", "1578616205 1578616205123"),
            ("LT LTS", "12:30 AM 12:30:05 AM"),
            ("L l", "01/10/2020 1/10/2020"),
            ("LL ll", "January 10, 2020 Jan 10, 2020"),
            ("LLL", "January 10, 2020 12:30 AM"),
            ("lll", "Jan 10, 2020 12:30 AM"),
            ("LLLL", "Friday, January 10, 2020 12:30 AM"),
            ("llll", "Fri, Jan 10, 2020 12:30 AM"),
            // metadata-action's README examples.
            ("YYYYMMDD", "20200110"),
            ("HHmmss", "003005"),
            ("YYYY-MM-DDTHH:mm:ss.SSS[Z]", "2020-01-10T00:30:05.123Z"),
            // Letters moment has no token for print as they are; escapes and brackets.
            (
                "[week] w, T, b c f i j n p q r t u v",
                "week 2, T, b c f i j n p q r t u v",
            ),
            ("\\Y\\YYYY \\L [a[b]", "YYYYY L [amb"),
            ("DDo MMo ddo ggg GGG w|", "10o 01o Fro 20g 20G w|"),
            // `[` without its `]` is a literal `[`, and what follows is formatted: `l` is a
            // locale format, `s`, `e` and `d` are tokens.
            ("[unclosed", "[unc1/10/2020o555"),
        ];
        let mut failures = Vec::new();
        for (fmt, want) in cases {
            let got = format(t, fmt, "UTC").unwrap();
            if got != *want {
                failures.push(format!("{fmt:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn weeks_and_week_years_at_the_turn_of_the_year() {
        // 2020-12-27 is a Sunday: US week 1 of 2021 (it holds 1 January), ISO week 52 of 2020.
        // 2021-01-01 is a Friday: US week 1 of 2021, ISO week 53 of 2020.
        // 2019-12-30 is a Monday: US week 1 of 2020, ISO week 1 of 2020.
        for (date, want) in [
            ("2020-12-27T12:00:00Z", "1 2021 7 52 2020"),
            ("2021-01-01T12:00:00Z", "1 2021 5 53 2020"),
            ("2019-12-30T12:00:00Z", "1 2020 1 1 2020"),
            ("2019-12-28T12:00:00Z", "52 2019 6 52 2019"),
        ] {
            assert_eq!(
                format(at(date), "w gggg E W GGGG", "UTC").unwrap(),
                want,
                "{date}"
            );
        }
    }

    #[test]
    fn zones_offsets_and_abbreviations() {
        let t = at("2020-01-10T00:30:00.123Z");
        // metadata-action's README example: nightly in Tokyo time.
        assert_eq!(
            format(t, "YYYYMMDD-hhmmss", "Asia/Tokyo").unwrap(),
            "20200110-093000"
        );
        assert_eq!(
            format(t, "ddd Do MMM, h A Z z", "America/New_York").unwrap(),
            "Thu 9th Jan, 7 PM -05:00 EST"
        );
        assert_eq!(
            format(at("2020-07-10T00:30:00Z"), "ZZ zz", "Europe/Paris").unwrap(),
            "+0200 CEST"
        );
        assert_eq!(format(t, "Z z", "Asia/Kolkata").unwrap(), "+05:30 IST");
        assert!(format(t, "YYYY", "Mars/Base").is_none());
    }
}
