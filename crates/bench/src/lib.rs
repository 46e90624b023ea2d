//! Shared helper for the benchmark binaries (`bench-mock`, `bench-floor`):
//! a tiny command-line reader. The binaries are the other end of the load,
//! so they stay small and cheap; see `bench/run.sh` for how they are used.

use std::str::FromStr;

/// `--name value` and `--flag` arguments, read by hand (no CLI crate: the
/// binaries take a handful of options).
#[derive(Debug, Default)]
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses `std::env::args()`; `known_flags` are the options that take no
    /// value.
    pub fn from_env(known_flags: &[&str]) -> Result<Args, String> {
        Args::parse(std::env::args().skip(1), known_flags)
    }

    pub fn parse(
        args: impl IntoIterator<Item = String>,
        known_flags: &[&str],
    ) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}`"));
            };
            if let Some((k, v)) = name.split_once('=') {
                pairs.push((k.to_owned(), Some(v.to_owned())));
            } else if known_flags.contains(&name) {
                pairs.push((name.to_owned(), None));
            } else {
                let v = it
                    .next()
                    .ok_or_else(|| format!("option `--{name}` needs a value"))?;
                pairs.push((name.to_owned(), Some(v)));
            }
        }
        Ok(Args { pairs })
    }

    /// Refuses options outside `allowed` (so a typo is an error, not a
    /// silently different benchmark).
    pub fn only(&self, allowed: &[&str]) -> Result<(), String> {
        for (k, _) in &self.pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "unknown option `--{k}` (known: --{})",
                    allowed.join(", --")
                ));
            }
        }
        Ok(())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("option `--{name}`: cannot read `{v}`")),
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.value(name)
            .ok_or_else(|| format!("option `--{name}` is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn reads_values_flags_and_equals() {
        let a = Args::parse(args("--port 9 --quiet --chunks=20"), &["quiet"]).unwrap();
        assert_eq!(a.get("port", 0u16).unwrap(), 9);
        assert!(a.flag("quiet"));
        assert_eq!(a.get("chunks", 0usize).unwrap(), 20);
        assert_eq!(a.get("missing", 7u32).unwrap(), 7);
        assert!(a.only(&["port", "quiet", "chunks"]).is_ok());
        assert!(a.only(&["port"]).is_err());
    }

    #[test]
    fn refuses_missing_values_and_strays() {
        assert!(Args::parse(args("--port"), &[]).is_err());
        assert!(Args::parse(args("port"), &[]).is_err());
        let a = Args::parse(args("--port x"), &[]).unwrap();
        assert!(a.get("port", 0u16).is_err());
    }
}
