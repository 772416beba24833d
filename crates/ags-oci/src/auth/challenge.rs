//! `WWW-Authenticate` header parsing (RFC 9110 section 11.6.1).
//!
//! Registries send `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
//! The parser is written to never panic and to skip junk rather than fail: a hostile or
//! broken registry controls this header.

/// The authentication scheme of a challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (the distribution token flow).
    Bearer,
    /// `Basic`.
    Basic,
    /// Anything else, lower-cased.
    Other(String),
}

/// One challenge: a scheme and its parameters (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// Parameters in order; names are lower-case.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.i < self.s.len() && is_tchar(self.s[self.i]) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    /// token68 allows `/` and trailing `=`.
    fn token68_rest(&mut self) {
        while self.i < self.s.len()
            && (is_tchar(self.s[self.i]) || matches!(self.s[self.i], b'/' | b'='))
        {
            self.i += 1;
        }
    }
    fn quoted(&mut self) -> String {
        // Called with the opening quote at self.i.
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    /// Skips to just after the next comma (or the end), for junk recovery.
    fn skip_past_comma(&mut self) {
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if c == b',' {
                return;
            }
        }
    }
}

/// Parses one or more challenges from a `WWW-Authenticate` header value.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut lx = Lexer {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        // Find the next scheme token.
        lx.skip_ws();
        while lx.peek() == Some(b',') {
            lx.i += 1;
            lx.skip_ws();
        }
        if lx.i >= lx.s.len() {
            break;
        }
        let Some(scheme) = lx.token() else {
            lx.skip_past_comma();
            continue;
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Scheme::Bearer,
            "basic" => Scheme::Basic,
            other => Scheme::Other(other.to_string()),
        };
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        // Parameters: name = value, separated by commas, until a token that is followed by
        // whitespace-then-not-'=' (the next challenge's scheme) or the end.
        loop {
            lx.skip_ws();
            // A token68 follows its scheme directly; after a comma a bare token is the next
            // challenge's scheme (`Negotiate, Basic`), RFC 9110 section 11.6.1.
            let mut after_comma = false;
            while lx.peek() == Some(b',') {
                lx.i += 1;
                lx.skip_ws();
                after_comma = true;
            }
            if lx.i >= lx.s.len() {
                break;
            }
            let save = lx.i;
            let Some(name) = lx.token() else {
                lx.skip_past_comma();
                continue;
            };
            lx.skip_ws();
            if challenge.params.is_empty() && lx.peek() == Some(b'=') {
                // `abc==` followed by a comma or the end is a token68, not a parameter.
                let mut j = lx.i;
                while lx.s.get(j) == Some(&b'=') {
                    j += 1;
                }
                while matches!(lx.s.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                if matches!(lx.s.get(j), None | Some(b',')) {
                    lx.skip_past_comma();
                    continue;
                }
            }
            if lx.peek() != Some(b'=') {
                if !after_comma
                    && lx.peek().is_none_or(|c| c == b',')
                    && challenge.params.is_empty()
                {
                    // A token68 (e.g. `Negotiate abc123`): no parameters to keep.
                    lx.skip_past_comma();
                    continue;
                }
                // The start of the next challenge.
                lx.i = save;
                break;
            }
            lx.i += 1;
            lx.skip_ws();
            let value = match lx.peek() {
                Some(b'"') => lx.quoted(),
                _ => {
                    let start = lx.i;
                    lx.token68_rest();
                    String::from_utf8_lossy(&lx.s[start..lx.i]).into_owned()
                }
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
            lx.skip_ws();
            match lx.peek() {
                None | Some(b',') => {}
                // Junk after a value: skip it.
                Some(_) => lx.skip_past_comma(),
            }
        }
        out.push(challenge);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_scheme_after_a_comma_is_the_next_challenge() {
        let c = parse_www_authenticate("Negotiate, Basic");
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].scheme, Scheme::Basic);
        let c = parse_www_authenticate("Negotiate abc123==, Basic realm=\"x\"");
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].scheme, Scheme::Basic);
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/debian:pull"),
                    ]),
                }],
            ),
            (
                r#"Basic realm="Registry Realm""#,
                vec![Challenge {
                    scheme: Scheme::Basic,
                    params: p(&[("realm", "Registry Realm")]),
                }],
            ),
            (
                r#"bearer Realm = "http://127.0.0.1:1/token" , Service=reg"#,
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", "http://127.0.0.1:1/token"), ("service", "reg")]),
                }],
            ),
            (
                r#"Bearer realm="a\"b\\c",scope="repository:x:pull,push""#,
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", r#"a"b\c"#), ("scope", "repository:x:pull,push")]),
                }],
            ),
            (
                r#"Basic realm="x", Bearer realm="y",service="z""#,
                vec![
                    Challenge {
                        scheme: Scheme::Basic,
                        params: p(&[("realm", "x")]),
                    },
                    Challenge {
                        scheme: Scheme::Bearer,
                        params: p(&[("realm", "y"), ("service", "z")]),
                    },
                ],
            ),
            (
                "Negotiate abc123==, Basic realm=r",
                vec![
                    Challenge {
                        scheme: Scheme::Other("negotiate".into()),
                        params: vec![],
                    },
                    Challenge {
                        scheme: Scheme::Basic,
                        params: p(&[("realm", "r")]),
                    },
                ],
            ),
            ("", vec![]),
            ("   ,, ,", vec![]),
            (
                "Bearer",
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: vec![],
                }],
            ),
            (
                // Unterminated quote: take what is there.
                r#"Bearer realm="http://x"#,
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", "http://x")]),
                }],
            ),
            (
                // Junk characters are skipped.
                r#"Bearer realm="r" junk;;, service="s", @@@, scope="q""#,
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", "r"), ("service", "s"), ("scope", "q")]),
                }],
            ),
            (
                "Bearer realm=\"\u{e9}\"",
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", "\u{e9}")]),
                }],
            ),
            (
                // Ambiguous with a token68; no usable parameter either way.
                "Bearer realm=",
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: vec![],
                }],
            ),
            (
                "Bearer realm=\"\",service=s",
                vec![Challenge {
                    scheme: Scheme::Bearer,
                    params: p(&[("realm", ""), ("service", "s")]),
                }],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_www_authenticate(input), want, "{input:?}");
        }
    }

    #[test]
    fn never_panics_on_junk() {
        let junk = [
            "\"",
            "\\",
            "=",
            "==,==",
            "Bearer \"\\",
            "Bearer a=\"\\",
            ",Bearer,=,\"",
            "\u{0}\u{1}",
            "Bearer realm=\"x\"\"y\"",
            "B a=b c=d e",
        ];
        for j in junk {
            let _ = parse_www_authenticate(j);
        }
        let c = parse_www_authenticate("Bearer realm=\"x\",service=\"y\"");
        assert_eq!(c[0].param("REALM"), Some("x"));
        assert_eq!(c[0].param("scope"), None);
    }
}
