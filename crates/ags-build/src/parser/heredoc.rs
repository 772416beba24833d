//! Recognising heredoc words (`<<EOF`, `<<-"EOF"`, `3<<EOF`) and stripping tabs.

/// What a heredoc word says, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocWord {
    pub(crate) delimiter: String,
    pub(crate) expand: bool,
    pub(crate) strip_tabs: bool,
    pub(crate) fd: u32,
}

/// Recognises a heredoc word: optional file descriptor digits, `<<`, optional `-`, then a
/// non-empty delimiter without `<`. As in the shell, quoting any part of the delimiter
/// (`<<"EOF"`, `<<'EOF'`, `<<E\OF`) turns expansion of the body off.
pub(crate) fn parse_heredoc_word(word: &str) -> Option<HeredocWord> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let fd = if digits == 0 {
        0
    } else {
        word[..digits].parse().ok()?
    };
    let mut delimiter = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(ch) = chars.next() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => delimiter.push(ch),
            None if ch == '\'' || ch == '"' => {
                quoted = true;
                quote = Some(ch);
            }
            None if ch == '\\' => {
                quoted = true;
                delimiter.push(chars.next()?);
            }
            None => delimiter.push(ch),
        }
    }
    if quote.is_some() || delimiter.is_empty() {
        return None;
    }
    Some(HeredocWord {
        delimiter,
        expand: !quoted,
        strip_tabs,
        fd,
    })
}

/// Removes leading tabs from every line of a `<<-` heredoc body.
pub(crate) fn strip_leading_tabs(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let w = parse_heredoc_word("<<EOF").unwrap();
        assert_eq!(
            w,
            HeredocWord {
                delimiter: "EOF".into(),
                expand: true,
                strip_tabs: false,
                fd: 0
            }
        );
        let w = parse_heredoc_word("<<-\"END\"").unwrap();
        assert_eq!(w.delimiter, "END");
        assert!(!w.expand);
        assert!(w.strip_tabs);
        let w = parse_heredoc_word("3<<'X Y'").unwrap();
        assert_eq!(w.delimiter, "X Y");
        assert_eq!(w.fd, 3);
        assert!(!w.expand);
        assert!(!parse_heredoc_word(r"<<\EOF").unwrap().expand);
    }

    #[test]
    fn not_heredoc_words() {
        for w in ["<<", "<<-", "a<<EOF", "<<<EOF", "<<\"EOF", "echo", "<<''"] {
            assert_eq!(parse_heredoc_word(w), None, "{w}");
        }
    }

    #[test]
    fn tab_stripping() {
        assert_eq!(strip_leading_tabs("\t\ta\n\t b\nc\n"), "a\n b\nc\n");
    }
}
