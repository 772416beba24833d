//! Feeds arbitrary text to `parse_www_authenticate`: a hostile registry controls this header,
//! and the parser promises never to panic and to skip junk. For every result it checks the
//! shape (lower-case token names, known schemes mapped) and that the challenges, written back
//! out in canonical form, parse to the same challenges.

#![no_main]

use ags_oci::auth::{Challenge, Scheme, parse_www_authenticate};
use libfuzzer_sys::fuzz_target;

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn is_lower(s: &str) -> bool {
    !s.bytes().any(|c| c.is_ascii_uppercase())
}

/// `Scheme name="value", name="value"`, challenges joined by `, `.
fn render(challenges: &[Challenge]) -> String {
    let mut out = Vec::new();
    for c in challenges {
        let mut s = match &c.scheme {
            Scheme::Bearer => "Bearer".to_string(),
            Scheme::Basic => "Basic".to_string(),
            Scheme::Other(o) => o.clone(),
        };
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        if !params.is_empty() {
            s.push(' ');
            s.push_str(&params.join(", "));
        }
        out.push(s);
    }
    out.join(", ")
}

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    let challenges = parse_www_authenticate(&header);
    assert!(challenges.len() <= header.len());
    for c in &challenges {
        if let Scheme::Other(o) = &c.scheme {
            assert!(is_token(o) && is_lower(o), "scheme {o:?}");
            assert!(
                o != "bearer" && o != "basic",
                "known scheme left as Other: {o:?}"
            );
        }
        for (k, _) in &c.params {
            assert!(is_token(k) && is_lower(k), "parameter name {k:?}");
            let first = c
                .param(&k.to_ascii_uppercase())
                .expect("case-insensitive lookup");
            assert!(c.params.iter().any(|(k2, v2)| k2 == k && v2 == first));
        }
    }

    // Canonical round trip, including lists of parameter-less challenges (`a, b`): after a
    // comma a bare token starts the next challenge.
    let text = render(&challenges);
    assert_eq!(parse_www_authenticate(&text), challenges, "re-parsing {text:?}");
});
