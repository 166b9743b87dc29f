//! `[server] cpus`: the CPUs the shards are pinned to, written as a list the way `taskset -c`
//! and cgroups' `cpuset.cpus` write it (`"0-3,6"`) or as a TOML array (`[0, 1, 2, 3, 6]`).
//!
//! Only the shape is checked here (numbers, ranges, bounds); whether the machine lets the
//! process run on those CPUs is checked at start against its allowed set
//! (`shard::ShardPlan`).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The largest CPU number a list may name: the kernel's `cpu_set_t` holds 1,024 CPUs.
pub const MAX_CPU: usize = 1023;

/// A set of CPU numbers, ascending and without repeats; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

/// Why a CPU list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// Nothing in it.
    #[error("the CPU list is empty")]
    Empty,
    /// A part that is neither a number nor a `lo-hi` range.
    #[error("{0:?} is not a CPU number or a range like \"0-3\"")]
    NotANumber(String),
    /// A range whose end comes before its start.
    #[error("the range {0:?} ends before it starts")]
    Backwards(String),
    /// A CPU beyond what the kernel's CPU sets hold.
    #[error("CPU {0} is beyond the largest CPU number ({MAX_CPU})")]
    TooLarge(usize),
}

impl CpuList {
    /// Reads `"0-3,6"` (parts separated by commas, each a CPU or an inclusive range;
    /// blanks around parts are allowed).
    pub fn parse(text: &str) -> Result<Self, CpuListError> {
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (number(lo.trim(), part)?, number(hi.trim(), part)?),
                None => {
                    let n = number(part, part)?;
                    (n, n)
                }
            };
            if hi < lo {
                return Err(CpuListError::Backwards(part.to_string()));
            }
            // Bounded before the range is walked: at most MAX_CPU + 1 numbers per part.
            let hi = bounded(hi)?;
            cpus.extend(lo..=hi);
        }
        Self::from_numbers(cpus)
    }

    /// A list of CPU numbers in any order, repeats allowed.
    pub fn from_numbers(mut cpus: Vec<usize>) -> Result<Self, CpuListError> {
        for &c in &cpus {
            bounded(c)?;
        }
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Err(CpuListError::Empty);
        }
        Ok(Self(cpus))
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }
}

impl std::fmt::Display for CpuList {
    /// The compact form (`0-3,6`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", compact(&self.0))
    }
}

/// Writes CPU numbers (ascending) the way `Cpus_allowed_list` does: `0-3,6`.
pub fn compact(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = cpus.get(i) {
        let mut end = start;
        while cpus.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

fn number(text: &str, part: &str) -> Result<usize, CpuListError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::NotANumber(part.to_string()));
    }
    // All digits: only an overflow fails, and that is too large in any case.
    text.parse().map_err(|_| CpuListError::TooLarge(usize::MAX))
}

fn bounded(cpu: usize) -> Result<usize, CpuListError> {
    if cpu > MAX_CPU {
        return Err(CpuListError::TooLarge(cpu));
    }
    Ok(cpu)
}

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = CpuList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a CPU list such as \"0-3,6\" or an array of CPU numbers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CpuList, E> {
                CpuList::parse(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CpuList, A::Error> {
                let mut cpus = Vec::new();
                while let Some(n) = seq.next_element::<u64>()? {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    if cpus.len() > MAX_CPU {
                        return Err(de::Error::custom("more CPUs than a CPU set holds"));
                    }
                    cpus.push(n);
                }
                CpuList::from_numbers(cpus).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_cpus() {
        assert_eq!(CpuList::parse("0-3,6").unwrap().cpus(), [0, 1, 2, 3, 6]);
        assert_eq!(CpuList::parse(" 6 , 2-3 ,2").unwrap().cpus(), [2, 3, 6]);
        assert_eq!(CpuList::parse("5").unwrap().cpus(), [5]);
        assert_eq!(CpuList::parse("1023").unwrap().cpus(), [1023]);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        assert_eq!(CpuList::parse(""), Err(CpuListError::Empty));
        assert_eq!(CpuList::parse(" , "), Err(CpuListError::Empty));
        assert_eq!(
            CpuList::parse("0-a"),
            Err(CpuListError::NotANumber("0-a".into()))
        );
        assert_eq!(
            CpuList::parse("-1"),
            Err(CpuListError::NotANumber("-1".into()))
        );
        assert_eq!(
            CpuList::parse("4-2"),
            Err(CpuListError::Backwards("4-2".into()))
        );
        assert_eq!(CpuList::parse("0-4096"), Err(CpuListError::TooLarge(4096)));
        assert_eq!(
            CpuList::parse("99999999999999999999999"),
            Err(CpuListError::TooLarge(usize::MAX))
        );
    }

    #[test]
    fn compact_form_round_trips() {
        for text in ["0-3,6", "1", "0,2,4", "0-1023"] {
            assert_eq!(CpuList::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(compact(&[]), "");
    }

    #[derive(Debug, Deserialize)]
    struct Server {
        cpus: CpuList,
    }

    #[test]
    fn toml_takes_a_string_or_an_array() {
        let s: Server = toml::from_str("cpus = \"2-3\"").unwrap();
        assert_eq!(s.cpus.cpus(), [2, 3]);
        let s: Server = toml::from_str("cpus = [3, 1, 1]").unwrap();
        assert_eq!(s.cpus.cpus(), [1, 3]);
        let err = toml::from_str::<Server>("cpus = []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        let err = toml::from_str::<Server>("cpus = [2000]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("2000"), "{err}");
        let err = toml::from_str::<Server>("cpus = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"x\""), "{err}");
    }
}
