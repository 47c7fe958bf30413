//! Docker's word processing for Dockerfile arguments (moby's `shell.Lex`): variable
//! substitution (`$a`, `${a}`, `${a:-b}`, `${a-b}`, `${a:+b}`, `${a+b}`, `${a:?msg}`),
//! quote removal (single quotes literal, double quotes expand) and the escape character.

use std::collections::BTreeMap;

/// Variables in scope: build args and ENV, later ones shadowing earlier.
pub type Vars = BTreeMap<String, String>;

/// Expands and unquotes one word (`ENV`, `WORKDIR`, `COPY` paths, …).
pub fn word(input: &str, vars: &Vars, escape: char) -> Result<String, String> {
    let words = process(input, vars, escape, false)?;
    Ok(words.into_iter().next().unwrap_or_default())
}

/// Expands, unquotes and splits on unquoted whitespace (`EXPOSE`, `VOLUME` lists).
pub fn words(input: &str, vars: &Vars, escape: char) -> Result<Vec<String>, String> {
    process(input, vars, escape, true)
}

fn process(input: &str, vars: &Vars, escape: char, split: bool) -> Result<Vec<String>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        vars,
        escape,
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    while let Some(c) = lexer.peek() {
        if split && c.is_whitespace() {
            lexer.pos += 1;
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        match c {
            '\'' => {
                lexer.pos += 1;
                cur.push_str(&lexer.single_quoted()?);
            }
            '"' => {
                lexer.pos += 1;
                cur.push_str(&lexer.double_quoted()?);
            }
            '$' => {
                lexer.pos += 1;
                let value = lexer.variable()?;
                if split {
                    // An unquoted expansion is split into words, as the shell would.
                    let mut parts = value.split_whitespace().peekable();
                    if value.starts_with(char::is_whitespace) && !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    while let Some(p) = parts.next() {
                        cur.push_str(p);
                        if parts.peek().is_some() {
                            out.push(std::mem::take(&mut cur));
                        }
                    }
                    if value.ends_with(char::is_whitespace) && !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    in_word = !cur.is_empty();
                } else {
                    cur.push_str(&value);
                }
            }
            c if c == escape => {
                lexer.pos += 1;
                match lexer.peek() {
                    Some(next) => {
                        cur.push(next);
                        lexer.pos += 1;
                    }
                    None => cur.push(escape),
                }
            }
            c => {
                lexer.pos += 1;
                cur.push(c);
            }
        }
    }
    if in_word || (!split && out.is_empty()) {
        out.push(cur);
    }
    Ok(out)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    vars: &'a Vars,
    escape: char,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(s),
                Some('$') => s.push_str(&self.variable()?),
                Some(c) if c == self.escape => {
                    match self.next() {
                        // Inside double quotes the escape only escapes these.
                        Some(n @ ('"' | '$')) => s.push(n),
                        Some(n) if n == self.escape => s.push(n),
                        Some(n) => {
                            s.push(c);
                            s.push(n);
                        }
                        None => return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ),
                    }
                }
                Some(c) => s.push(c),
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the value of `$name` or `${…}`; a lone `$` stays.
    fn variable(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("missing variable name in ${}".into());
        }
        let value = self.vars.get(&name);
        match self.next() {
            Some('}') => Ok(value.cloned().unwrap_or_default()),
            Some(':') => {
                let op = self.next().ok_or("unexpected end of statement in ${}")?;
                let word = self.word_until_brace()?;
                let set = value.is_some_and(|v| !v.is_empty());
                match op {
                    '-' => Ok(if set {
                        value.cloned().unwrap_or_default()
                    } else {
                        word
                    }),
                    '+' => Ok(if set { word } else { String::new() }),
                    '?' if set => Ok(value.cloned().unwrap_or_default()),
                    '?' => Err(format!(
                        "{name}: {}",
                        if word.is_empty() {
                            "is not allowed to be unset"
                        } else {
                            &word
                        }
                    )),
                    other => Err(format!("unsupported modifier ({other}) in substitution")),
                }
            }
            Some(op @ ('-' | '+' | '?')) => {
                let word = self.word_until_brace()?;
                let set = value.is_some();
                match op {
                    '-' => Ok(if set {
                        value.cloned().unwrap_or_default()
                    } else {
                        word
                    }),
                    '+' => Ok(if set { word } else { String::new() }),
                    _ if set => Ok(value.cloned().unwrap_or_default()),
                    _ => Err(format!(
                        "{name}: {}",
                        if word.is_empty() {
                            "is not allowed to be unset"
                        } else {
                            &word
                        }
                    )),
                }
            }
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
            None => Err("missing '}' in variable substitution".into()),
        }
    }

    /// The word of `${a:-word}`: expanded, up to the closing brace.
    fn word_until_brace(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(s),
                Some('$') => s.push_str(&self.variable()?),
                Some('\'') => s.push_str(&self.single_quoted()?),
                Some('"') => s.push_str(&self.double_quoted()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        s.push(n);
                    }
                }
                Some(c) => s.push(c),
                None => return Err("missing '}' in variable substitution".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("a", "1"),
            ("empty", ""),
            ("sp", "x y"),
            ("path", "/usr/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn w(s: &str) -> String {
        word(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn substitutes_like_docker() {
        assert_eq!(w("$a"), "1");
        assert_eq!(w("${a}b"), "1b");
        assert_eq!(w("$unset"), "");
        assert_eq!(w("${unset:-dflt}"), "dflt");
        assert_eq!(w("${empty:-dflt}"), "dflt");
        assert_eq!(w("${empty-dflt}"), "");
        assert_eq!(w("${unset-dflt}"), "dflt");
        assert_eq!(w("${a:-dflt}"), "1");
        assert_eq!(w("${a:+alt}"), "alt");
        assert_eq!(w("${empty:+alt}"), "");
        assert_eq!(w("${empty+alt}"), "alt");
        assert_eq!(w("${unset:+alt}"), "");
        assert_eq!(w("${unset:-$a$a}"), "11");
        assert_eq!(w("$path:/bin"), "/usr/bin:/bin");
        assert_eq!(w("cost $5"), "cost $5");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$a'"), "$a");
        assert_eq!(w("\"$a b\""), "1 b");
        assert_eq!(w("\\$a"), "$a");
        assert_eq!(w("\"\\$a\""), "$a");
        assert_eq!(word("`$a", &vars(), '`').unwrap(), "$a");
        assert_eq!(
            words("$sp \"$sp\" 'q q'", &vars(), '\\').unwrap(),
            ["x", "y", "x y", "q q"]
        );
        assert_eq!(
            words("80/tcp  ${a}000", &vars(), '\\').unwrap(),
            ["80/tcp", "1000"]
        );
    }

    #[test]
    fn malformed_substitutions_are_errors() {
        for bad in [
            "${a",
            "${}",
            "${a!b}",
            "'open",
            "\"open",
            "${unset:?must be set}",
        ] {
            assert!(word(bad, &vars(), '\\').is_err(), "{bad}");
        }
        assert_eq!(
            word("${unset:?must be set}", &vars(), '\\').unwrap_err(),
            "unset: must be set"
        );
    }
}
