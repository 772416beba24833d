//! Feeds arbitrary text to `Reference::parse` (image references come from the command line,
//! config files and Containerfiles). Errors are expected; panics are bugs. For every accepted
//! reference it checks that the canonical form (`Display`) re-parses to an equal reference,
//! that rebuilding it from its parts gives the same reference, and the length caps.

#![no_main]

use ags_oci::Reference;
use ags_oci::reference::NAME_TOTAL_LENGTH_MAX;
use libfuzzer_sys::fuzz_target;

fn reparse(r: &Reference) -> Reference {
    let text = r.to_string();
    let again = Reference::parse(&text)
        .unwrap_or_else(|e| panic!("canonical form {text:?} of {r:?} does not re-parse: {e}"));
    assert_eq!(&again, r, "canonical form {text:?} re-parses differently");
    assert_eq!(again.to_string(), text);
    again
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Reference::parse(input);
    assert_eq!(
        parsed.as_ref().ok(),
        input.parse::<Reference>().as_ref().ok(),
        "parse and FromStr disagree"
    );
    let Ok(r) = parsed else {
        return;
    };

    assert!(!r.registry().is_empty() && !r.repository().is_empty());
    assert!(
        r.name().len() <= NAME_TOTAL_LENGTH_MAX,
        "name too long: {}",
        r.name()
    );
    assert!(r.tag().is_some() || r.digest().is_some());
    assert!(r.tag().is_none_or(|t| !t.is_empty() && t.len() <= 128));
    assert!(!r.to_string().contains(char::is_whitespace));
    assert!(!r.api_reference().is_empty());

    reparse(&r);
    let from_parts = Reference::from_parts(r.registry(), r.repository(), r.tag(), r.digest())
        .unwrap_or_else(|e| panic!("from_parts of {r:?}: {e}"));
    assert_eq!(from_parts, r);

    let undigested = r.without_digest();
    assert!(undigested.digest().is_none() && undigested.tag().is_some());
    reparse(&undigested);
    let pinned = r.with_digest(ags_oci::Digest::of(input.as_bytes()));
    assert_eq!(pinned.tag(), r.tag());
    reparse(&pinned);
});
