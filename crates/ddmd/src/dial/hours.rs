//! Dial-out hours, as RRAS has them for links that cost by the minute:
//! windows of local time in which an interface may dial.
//!
//! A window is `DAYS HH:MM-HH:MM`: DAYS is `*` (every day), a day (`Mon`),
//! a range (`Mon-Fri`, which may wrap: `Sat-Mon`) or a comma list of those
//! (`Mon,Wed,Fri-Sat`); the times are local, the end (up to `24:00`) after
//! the start. An interface with no windows may always dial. Pure logic:
//! the router asks with the time its clock gives.

use std::fmt;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A moment of the local week, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekTime {
    /// 0 is Monday.
    pub weekday: u8,
    /// Minutes since local midnight.
    pub minute: u16,
}

impl WeekTime {
    /// The local time now (localtime_r, so TZ is honoured).
    pub fn now() -> WeekTime {
        let now = libc::time_t::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(0);
        // SAFETY: localtime_r writes only the tm it is given.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            libc::localtime_r(&now, &mut tm);
            tm
        };
        WeekTime {
            weekday: ((tm.tm_wday + 6) % 7) as u8,
            minute: (tm.tm_hour * 60 + tm.tm_min) as u16,
        }
    }
}

/// One window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    /// Bit n: weekday n (0 Monday).
    days: u8,
    start: u16,
    end: u16,
}

/// An interface's dial-out hours; empty means always.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialoutHours {
    windows: Vec<Window>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct HoursError(String);

impl fmt::Display for HoursError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DialoutHours {
    pub fn parse(specs: &[String]) -> Result<DialoutHours, HoursError> {
        let windows = specs
            .iter()
            .map(|spec| {
                parse_window(spec).ok_or_else(|| {
                    HoursError(format!(
                        "dialout_hours: {spec:?} is not like \"Mon-Fri 08:00-18:00\""
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DialoutHours { windows })
    }

    /// True when the interface may dial at `at`.
    pub fn allows(&self, at: WeekTime) -> bool {
        self.windows.is_empty()
            || self
                .windows
                .iter()
                .any(|w| w.days & (1 << at.weekday) != 0 && (w.start..w.end).contains(&at.minute))
    }

    pub fn is_always(&self) -> bool {
        self.windows.is_empty()
    }
}

fn parse_window(spec: &str) -> Option<Window> {
    let (days, times) = spec.trim().split_once(char::is_whitespace)?;
    let (start, end) = times.trim().split_once('-')?;
    let (start, end) = (minute_of_day(start)?, minute_of_day(end)?);
    (start < end).then_some(())?;
    Some(Window {
        days: parse_days(days)?,
        start,
        end,
    })
}

fn parse_days(spec: &str) -> Option<u8> {
    if spec == "*" {
        return Some(0x7f);
    }
    spec.split(',').try_fold(0u8, |bits, item| {
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        let (first, last) = (day(first)?, day(last)?);
        let mut day = first;
        let mut bits = bits | 1 << day;
        while day != last {
            day = (day + 1) % 7;
            bits |= 1 << day;
        }
        Some(bits)
    })
}

fn day(name: &str) -> Option<u8> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|p| p as u8)
}

fn minute_of_day(hh_mm: &str) -> Option<u16> {
    let (h, m) = hh_mm.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(specs: &[&str]) -> DialoutHours {
        DialoutHours::parse(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn at(weekday: u8, h: u16, m: u16) -> WeekTime {
        WeekTime {
            weekday,
            minute: h * 60 + m,
        }
    }

    #[test]
    fn working_hours() {
        let h = hours(&["Mon-Fri 08:00-18:00"]);
        assert!(h.allows(at(0, 8, 0)));
        assert!(h.allows(at(4, 17, 59)));
        assert!(!h.allows(at(4, 18, 0)), "the end is not in the window");
        assert!(!h.allows(at(0, 7, 59)));
        assert!(!h.allows(at(5, 12, 0)), "Saturday");
    }

    #[test]
    fn lists_wrapping_ranges_stars_and_midnight() {
        let h = hours(&["Sat-Mon 00:00-24:00", "wed,fri 12:30-13:00"]);
        for day in [5, 6, 0] {
            assert!(h.allows(at(day, 23, 59)));
        }
        assert!(!h.allows(at(1, 12, 0)));
        assert!(h.allows(at(2, 12, 30)) && h.allows(at(4, 12, 59)));
        assert!(hours(&["* 09:00-10:00"]).allows(at(3, 9, 30)));
        assert!(hours(&[]).allows(at(3, 3, 3)), "no windows: always");
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "Mon-Fri",
            "Mon 08:00",
            "Funday 08:00-09:00",
            "Mon 09:00-08:00",
            "Mon 08:60-09:00",
            "Mon 08:00-24:01",
        ] {
            assert!(
                DialoutHours::parse(&[bad.to_string()]).is_err(),
                "{bad} accepted"
            );
        }
    }
}
