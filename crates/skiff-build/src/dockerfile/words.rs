//! Splitting `ENV`/`LABEL`/`ARG` arguments as Docker's parser does (`parseNameVal`):
//! `k=v k2="v 2"` pairs, or the legacy `ENV key value with spaces` form. Values keep their
//! quotes here; [`super::expand`] removes them when the stage is planned.

use super::ArgDecl;

/// Splits on unquoted whitespace, keeping quotes and escapes in the words.
fn split_keep_quotes(s: &str, escape: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "unexpected end of statement while looking for matching {q}"
        ));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// `ENV`/`LABEL` arguments.
pub(super) fn key_values(
    s: &str,
    escape: char,
    name: &str,
) -> Result<Vec<(String, String)>, String> {
    let words = split_keep_quotes(s, escape)?;
    let Some(first) = words.first() else {
        return Err(format!("{name} requires at least one argument"));
    };
    if !first.contains('=') {
        // Legacy `ENV key value…`: the rest of the line is the value.
        let trimmed = s.trim();
        let (key, value) = trimmed
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{name} must have two arguments"))?;
        return Ok(vec![(key.to_string(), value.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// `ARG a b=1`.
pub(super) fn arg_decls(s: &str, escape: char) -> Result<Vec<ArgDecl>, String> {
    let words = split_keep_quotes(s, escape)?;
    if words.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    words
        .into_iter()
        .map(|w| {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid ARG name {name:?}"));
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_forms() {
        assert_eq!(
            key_values(r#"A=1 B="two words" C='x y'"#, '\\', "ENV").unwrap(),
            [
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "'x y'".into())
            ]
        );
        assert_eq!(
            key_values("PATH some value here", '\\', "ENV").unwrap(),
            [("PATH".to_string(), "some value here".to_string())]
        );
        assert!(key_values("A=1 B", '\\', "ENV").is_err());
        assert!(key_values("=1", '\\', "ENV").is_err());
        assert!(key_values("ONLYKEY", '\\', "ENV").is_err());
        assert!(key_values("A=\"open", '\\', "ENV").is_err());
    }

    #[test]
    fn arg_forms() {
        let a = arg_decls("A B=2 C=", '\\').unwrap();
        assert_eq!(
            a[0],
            ArgDecl {
                name: "A".into(),
                default: None
            }
        );
        assert_eq!(a[1].default.as_deref(), Some("2"));
        assert_eq!(a[2].default.as_deref(), Some(""));
        assert!(arg_decls("a-b=1", '\\').is_err());
    }
}
