//! Command lines as clevis's scripts read them (bash `getopts`): bundled
//! letters (`-fy`), values attached or not (`-k-`, `-s 1`), options only before
//! the first operand, `--` ends them. `--json` and `--help` are accepted anywhere.

use std::fmt;

/// One command's grammar.
pub struct Spec {
    /// `bind`, `list`, ...
    pub name: &'static str,
    /// getopts letters; a `:` after a letter means it takes a value.
    pub letters: &'static str,
    /// The usage text clevis prints, in latchkey's words.
    pub usage: &'static str,
    /// clevis's exit status for a usage error (2 for bind and unbind, else 1).
    pub usage_status: i32,
}

/// A parsed command line.
#[derive(Debug, Default)]
pub struct Opts {
    values: Vec<(char, Option<String>)>,
    /// `--json` was given.
    pub json: bool,
    /// `-h` or `--help` was given.
    pub help: bool,
    /// The operands, in order.
    pub operands: Vec<String>,
}

impl Opts {
    /// The value of the last `-c VALUE`.
    pub fn value(&self, c: char) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == c)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether switch `-c` was given.
    pub fn flag(&self, c: char) -> bool {
        self.values.iter().any(|(k, _)| *k == c)
    }
}

/// A command line that does not fit the grammar.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `args` (after the command name) by `spec`.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Opts, Usage> {
    let mut o = Opts::default();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--json" {
            o.json = true;
            continue;
        }
        if a == "--help" {
            o.help = true;
            continue;
        }
        if options_done || a == "-" || !a.starts_with('-') {
            options_done = true;
            o.operands.push(a.clone());
            continue;
        }
        if a == "--" {
            options_done = true;
            continue;
        }
        let letters: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            j += 1;
            let Some(pos) = spec.letters.find(c).filter(|_| c != ':') else {
                return Err(Usage(format!("unknown option -{c}")));
            };
            if c == 'h' && !spec.letters[pos + 1..].starts_with(':') {
                o.help = true;
            }
            if spec.letters[pos + c.len_utf8()..].starts_with(':') {
                let value = if j < letters.len() {
                    letters[j..].iter().collect::<String>()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(Usage(format!("option -{c} needs a value")));
                };
                o.values.push((c, Some(value)));
                break;
            }
            o.values.push((c, None));
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: Spec = Spec {
        name: "bind",
        letters: "hfyd:s:k:t:e:",
        usage: "",
        usage_status: 2,
    };

    fn p(args: &[&str]) -> Result<Opts, Usage> {
        parse(
            &BIND,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn getopts_forms() {
        let o = p(&["-fk-", "-d", "dev", "-s1", "--json", "tang", "{}", "-y"]).unwrap();
        assert!(o.flag('f') && !o.flag('y') && o.json);
        assert_eq!(o.value('k'), Some("-"));
        assert_eq!(o.value('d'), Some("dev"));
        assert_eq!(o.value('s'), Some("1"));
        // After the first operand nothing is an option any more (as getopts).
        assert_eq!(o.operands, ["tang", "{}", "-y"]);
        let o = p(&["-y", "-k", "-", "--", "-odd", "x"]).unwrap();
        assert_eq!(o.value('k'), Some("-"));
        assert_eq!(o.operands, ["-odd", "x"]);
        assert!(p(&["-x"]).is_err());
        assert!(p(&["-d"]).is_err());
        assert!(p(&["-h"]).unwrap().help);
        assert!(p(&["-d", "x", "--help"]).unwrap().help);
    }
}
