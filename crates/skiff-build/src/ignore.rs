//! `.dockerignore` with Docker's semantics (moby's `patternmatcher`): one pattern a line,
//! `#` comments, `!` exceptions, paths cleaned (`/a`, `./a`, `a/` all mean `a`), `*` and
//! `?` within one path component, `[…]` classes, `**` across components, `\` escapes. A
//! path is excluded when the last pattern matching it or one of its parent directories is
//! not an exception.

use regex::Regex;

use crate::error::{BuildError, Result};

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    re: Regex,
}

/// The parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

impl IgnoreRules {
    pub fn parse(text: &str) -> Result<IgnoreRules> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let mut p = raw.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(BuildError::Ignore {
                        line,
                        message: "illegal exclusion pattern: \"!\"".into(),
                    });
                }
            }
            let cleaned = clean(p);
            let cleaned = cleaned.trim_start_matches('/');
            if cleaned.is_empty() || cleaned == "." {
                continue;
            }
            let re = Regex::new(&to_regex(cleaned)).map_err(|e| BuildError::Ignore {
                line,
                message: format!("invalid pattern {p:?}: {e}"),
            })?;
            patterns.push(Pattern { exclusion, re });
        }
        Ok(IgnoreRules { patterns })
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let comps: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = p.re.is_match(path)
                || (1..comps.len()).any(|n| p.re.is_match(&comps[..n].join("/")));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// A `COPY` wildcard (Go's `filepath.Match` plus `**`) as a matcher of whole paths.
pub(crate) fn glob(pattern: &str) -> Option<Regex> {
    Regex::new(&to_regex(pattern)).ok()
}

/// moby's translation of a pattern to an anchored regular expression.
fn to_regex(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                i += 1;
                if let Some(n) = chars.get(i) {
                    re.push_str(&regex::escape(&n.to_string()));
                } else {
                    re.push_str("\\\\");
                }
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
        i += 1;
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &str) -> IgnoreRules {
        IgnoreRules::parse(s).unwrap()
    }

    #[test]
    fn matches_like_moby_patternmatcher() {
        let r = rules(
            "# comment\n\nnode_modules\n*.log\n!keep.log\n/build/\n**/*.tmp\ndocs/**/draft?.md\n",
        );
        for excluded in [
            "node_modules",
            "node_modules/a/b.js",
            "x.log",
            "build",
            "build/out/bin",
            "a/b/c.tmp",
            "c.tmp",
            "docs/draft1.md",
            "docs/x/y/draft2.md",
        ] {
            assert!(r.is_excluded(excluded), "{excluded} should be excluded");
        }
        for kept in [
            "keep.log",
            "src/x.log",
            "src/main.rs",
            "buildx",
            "docs/draft10.md",
            "Dockerfile",
        ] {
            assert!(!r.is_excluded(kept), "{kept} should be kept");
        }
    }

    #[test]
    fn later_patterns_win_and_exceptions_reinclude() {
        let r = rules("*\n!src\nsrc/secret\n");
        assert!(r.is_excluded("README"));
        assert!(!r.is_excluded("src/main.rs"));
        assert!(r.is_excluded("src/secret"));
        assert!(r.is_excluded("src/secret/key"));
        let r = rules("a/**\n!a/b/c");
        assert!(r.is_excluded("a/x"));
        assert!(!r.is_excluded("a/b/c"));
    }

    #[test]
    fn classes_escapes_and_cleaning() {
        let r = rules("[ab].txt\n\\*star\n./sub/../top\n");
        assert!(r.is_excluded("a.txt") && r.is_excluded("b.txt") && !r.is_excluded("c.txt"));
        assert!(r.is_excluded("*star") && !r.is_excluded("xstar"));
        assert!(r.is_excluded("top"));
    }

    #[test]
    fn malformed_lines_are_line_numbered_errors() {
        let err = IgnoreRules::parse("ok\n!\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".dockerignore line 2: illegal exclusion pattern: \"!\""
        );
        let err = IgnoreRules::parse("a\nb\n[unclosed\n").unwrap_err();
        assert!(matches!(err, BuildError::Ignore { line: 3, .. }), "{err}");
    }
}
