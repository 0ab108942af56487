//! Calendar dates as days since 1970-01-01 (proleptic Gregorian), and the
//! age cut-off that turns "at least N years old on date D" into an integer
//! comparison the circuits can check.
//!
//! A circuit cannot do calendar arithmetic cheaply, and "18 years" is not a
//! fixed number of days. So the verifier computes, natively, the latest
//! birth date that is at least `N` years old on `D` ([`age_cutoff`]), and
//! the proof shows `date_of_birth <= cutoff`. `D` and `N` are the
//! verifier's choice; the cut-off they determine is the public input.
//!
//! The rule: someone born on `b` is at least `N` years old on `D` when
//! `(b.year + N, b.month, b.day) <= (D.year, D.month, D.day)`
//! lexicographically. A 29 February birthday therefore counts from
//! 1 March in common years.

/// Why a date was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not a valid Gregorian date, or a year outside [`MIN_YEAR`]..=[`MAX_YEAR`].
    #[error("not a valid date in years {MIN_YEAR}..={MAX_YEAR}")]
    InvalidDate,
}

/// The earliest year accepted.
pub const MIN_YEAR: i64 = 1;
/// The latest year accepted.
pub const MAX_YEAR: i64 = 9999;

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of the date `year-month-day`.
///
/// # Errors
/// [`DateError::InvalidDate`] for impossible dates and out-of-range years.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Result<i64, DateError> {
    if !(MIN_YEAR..=MAX_YEAR).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return Err(DateError::InvalidDate);
    }
    // Howard Hinnant's algorithm: count from 0000-03-01 in 400-year eras,
    // so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Ok(era * 146_097 + day_of_era - 719_468)
}

/// The date `(year, month, day)` of a day count.
///
/// # Errors
/// [`DateError::InvalidDate`] if the year falls outside the accepted range.
pub fn civil_from_days(days: i64) -> Result<(i64, u32, u32), DateError> {
    // Years 1..=9999 span fewer than 3.7 million days: bound the input
    // first so that the arithmetic below cannot overflow.
    if !(-719_162..=2_932_896).contains(&days) {
        return Err(DateError::InvalidDate);
    }
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // `month` is in 1..=12 and `day` in 1..=31 by construction.
    Ok((year, month as u32, day as u32))
}

/// The latest date of birth (days since 1970-01-01) that is at least
/// `years` old on `today` (see the module docs for the rule).
///
/// # Errors
/// [`DateError::InvalidDate`] if `today` or the cut-off year is out of
/// range.
pub fn age_cutoff(today: i64, years: u32) -> Result<i64, DateError> {
    let (year, month, day) = civil_from_days(today)?;
    let birth_year = year - i64::from(years);
    // 29 February of a common year does not exist: the last birthday that
    // qualifies is the 28th.
    let day = if month == 2 && day == 29 && !is_leap_year(birth_year) {
        28
    } else {
        day
    };
    days_from_civil(birth_year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), Ok(0));
        assert_eq!(days_from_civil(1969, 12, 31), Ok(-1));
        assert_eq!(days_from_civil(2000, 3, 1), Ok(11_017));
        assert_eq!(days_from_civil(2024, 2, 29), Ok(19_782));
        assert_eq!(days_from_civil(2023, 2, 29), Err(DateError::InvalidDate));
        assert_eq!(days_from_civil(2023, 13, 1), Err(DateError::InvalidDate));
        assert_eq!(days_from_civil(0, 1, 1), Err(DateError::InvalidDate));
        assert_eq!(civil_from_days(19_782), Ok((2024, 2, 29)));
        assert_eq!(civil_from_days(i64::MIN), Err(DateError::InvalidDate));
    }

    #[test]
    fn age_cutoff_is_the_same_calendar_day() {
        let today = days_from_civil(2025, 6, 15).expect("valid");
        assert_eq!(age_cutoff(today, 18), days_from_civil(2007, 6, 15));
        assert_eq!(age_cutoff(today, 0), Ok(today));
    }

    #[test]
    fn leap_day_birthdays_count_from_march_first() {
        let born = days_from_civil(2004, 2, 29).expect("valid");
        let feb28 = days_from_civil(2022, 2, 28).expect("valid");
        let mar1 = days_from_civil(2022, 3, 1).expect("valid");
        assert!(born > age_cutoff(feb28, 18).expect("valid"));
        assert!(born <= age_cutoff(mar1, 18).expect("valid"));
        // On a 29 February, someone born on the 28th eighteen common years
        // before is of age, someone born on 1 March is not.
        let leap_today = days_from_civil(2024, 2, 29).expect("valid");
        assert_eq!(age_cutoff(leap_today, 18), days_from_civil(2006, 2, 28));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn civil_round_trips(days in -719_162i64..=2_932_896) {
            let (y, m, d) = civil_from_days(days).expect("in range");
            prop_assert_eq!(days_from_civil(y, m, d), Ok(days));
        }

        /// The cut-off agrees with the lexicographic rule for every birth
        /// date near it.
        #[test]
        fn cutoff_matches_the_rule(today in 0i64..40_000, years in 0u32..100, offset in -800i64..800) {
            let cutoff = age_cutoff(today, years).expect("in range");
            let born = cutoff + offset;
            let (by, bm, bd) = civil_from_days(born).expect("in range");
            let (ty, tm, td) = civil_from_days(today).expect("in range");
            let of_age = (by + i64::from(years), bm, bd) <= (ty, tm, td);
            prop_assert_eq!(born <= cutoff, of_age);
        }
    }
}
