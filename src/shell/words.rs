//! A command line split into words as zkCli.sh splits it, and each command's options parsed
//! the way its commons-cli parser does (`-v 3`, `-s`, anywhere on the line; `--` ends them).

/// Split an interactive line into words: whitespace separates, `"…"` and `'…'` group (the
/// quotes are removed), a backslash escapes the next character inside double quotes.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        None => return Err(format!("unclosed {quote} quote")),
                        Some(q) if q == quote => break,
                        Some('\\') if quote == '"' => match chars.next() {
                            Some(e) => cur.push(e),
                            None => return Err("unclosed \" quote".into()),
                        },
                        Some(o) => cur.push(o),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A command's words after its name: flags (with their values) and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    flags: Vec<(char, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    /// Parse `words` for a command whose boolean flags are `switches` and whose flags taking a
    /// value are `valued` (single letters, as zkCli's).
    pub fn new(words: &[String], switches: &str, valued: &str) -> Result<Parsed, String> {
        let mut p = Parsed::default();
        let mut it = words.iter();
        let mut options_done = false;
        while let Some(w) = it.next() {
            if options_done || !w.starts_with('-') || w.len() < 2 || w == "-" {
                p.args.push(w.clone());
                continue;
            }
            if w == "--" {
                options_done = true;
                continue;
            }
            let name = &w[1..];
            let mut letters = name.chars();
            let first = letters.next().unwrap_or('-');
            if name.chars().count() == 1 && valued.contains(first) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("option -{first} needs a value"))?;
                p.flags.push((first, Some(v.clone())));
            } else if name.chars().all(|c| switches.contains(c)) {
                // Bundled switches, `-se`, as commons-cli accepts them.
                for c in name.chars() {
                    p.flags.push((c, None));
                }
            } else if name.parse::<f64>().is_ok() {
                // A negative number is an argument (data, a version), not an option.
                p.args.push(w.clone());
            } else {
                return Err(format!("unknown option {w}"));
            }
        }
        Ok(p)
    }

    pub fn has(&self, flag: char) -> bool {
        self.flags.iter().any(|(f, _)| *f == flag)
    }

    pub fn value(&self, flag: char) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .and_then(|(_, v)| v.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn quotes_group_words_and_are_removed() {
        assert_eq!(
            split(r#"create /a "hello world" 'x y'"#).unwrap(),
            w(&["create", "/a", "hello world", "x y"])
        );
        assert_eq!(split(r#"set /a """#).unwrap(), w(&["set", "/a", ""]));
        assert_eq!(
            split(r#"set /a "q\"uote""#).unwrap(),
            w(&["set", "/a", "q\"uote"])
        );
        assert!(split(r#"set /a "open"#).is_err());
        assert_eq!(split("  ls   /  ").unwrap(), w(&["ls", "/"]));
    }

    #[test]
    fn options_are_found_anywhere_and_values_taken() {
        let p = Parsed::new(&w(&["/a", "-v", "3", "data", "-s"]), "s", "v").unwrap();
        assert!(p.has('s'));
        assert_eq!(p.value('v'), Some("3"));
        assert_eq!(p.args, w(&["/a", "data"]));
        let p = Parsed::new(&w(&["-es", "/a"]), "sec", "t").unwrap();
        assert!(p.has('e') && p.has('s') && !p.has('c'));
        let p = Parsed::new(&w(&["/a", "-1"]), "s", "v").unwrap();
        assert_eq!(p.args, w(&["/a", "-1"]));
        let p = Parsed::new(&w(&["/a", "--", "-s"]), "s", "v").unwrap();
        assert!(!p.has('s'));
        assert!(Parsed::new(&w(&["-x", "/a"]), "s", "v").is_err());
        assert!(Parsed::new(&w(&["/a", "-v"]), "s", "v").is_err());
    }
}
