//! Where a tool call goes: `base_url` + `/` + the path the agent gave, and
//! never anywhere else. The path is checked as it was sent (before any
//! decoding), and refused before anything is sent when it could climb out
//! of `base_url` or name another host in any reading a server might give
//! it: dot segments, encoded dots and slashes, backslashes (encoded or
//! not), empty segments (`//`), `@`, a scheme (`http:`), percent-encoded
//! `%` (double encoding), control characters, and bytes outside ASCII
//! (encoded or not: some servers fold Unicode look-alikes such as `．` into
//! their ASCII twins).

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the tool path is refused: {0}")]
pub struct Refused(pub &'static str);

/// Bytes a path may hold as they are: RFC 3986 `pchar` without `@` and
/// without the characters that mean something to a URL parser.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
        )
}

/// Checks `rest` (the path after `/tools/{tool}`, without its leading
/// `/`, as sent) and returns the URL it goes to.
pub fn destination(base_url: &str, rest: &str, query: Option<&str>) -> Result<String, Refused> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => {}
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let v = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h * 16 + l) as u8,
                    _ => return Err(Refused("a `%` that is not a percent-encoded byte")),
                };
                match v {
                    b'.' => return Err(Refused("an encoded dot")),
                    b'/' | b'\\' => return Err(Refused("an encoded slash or backslash")),
                    b'%' => return Err(Refused("an encoded `%` (double encoding)")),
                    b'@' => return Err(Refused("an encoded `@`")),
                    b'?' | b'#' => return Err(Refused("an encoded `?` or `#`")),
                    0..=0x1f | 0x7f => return Err(Refused("an encoded control character")),
                    0x80.. => return Err(Refused("a byte outside ASCII")),
                    _ => {}
                }
                i += 2;
            }
            b'\\' => return Err(Refused("a backslash")),
            b'@' => return Err(Refused("an `@`")),
            b if b >= 0x80 => return Err(Refused("a byte outside ASCII")),
            b if plain(b) => {}
            _ => return Err(Refused("a character a path may not hold")),
        }
        i += 1;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (n, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return Err(Refused("a dot segment")),
            // Only a trailing slash may leave an empty segment.
            "" if n + 1 < segments.len() => {
                return Err(Refused("an empty segment (`//` or a leading `/`)"));
            }
            _ => {}
        }
        if n == 0 && segment.contains(':') {
            // `http:` or `c:`: a scheme or a drive to some readers.
            return Err(Refused("a `:` in the first segment"));
        }
    }
    let mut url = String::with_capacity(base_url.len() + rest.len() + 2);
    url.push_str(base_url);
    url.push('/');
    url.push_str(rest);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        if q.bytes().any(|b| !(0x20..0x7f).contains(&b) || b == b'#') {
            return Err(Refused("a query with a character a query may not hold"));
        }
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://api.example.com/v3";

    /// Inputs that try to leave `base_url`: each refused.
    const ESCAPES: &[&str] = &[
        "..",
        "../etc/passwd",
        "repos/../../admin",
        "repos/..",
        "./repos",
        "repos/./x",
        "%2e%2e/admin",
        "%2E%2E/admin",
        ".%2e/admin",
        "%2e./admin",
        "repos/%2e%2e/%2e%2e/admin",
        "%252e%252e/admin",
        "%25%32%65%25%32%65/admin",
        "repos%2f..%2fadmin",
        "repos%2F..%2Fadmin",
        "..%2fadmin",
        "..\\admin",
        "repos\\..\\admin",
        "%5c..%5cadmin",
        "..%5Cadmin",
        "//evil.example.com/x",
        "repos//x",
        "/etc/passwd",
        "@evil.example.com",
        "user@evil.example.com/x",
        "%40evil.example.com",
        "http://evil.example.com/",
        "https:evil.example.com",
        "http:%2f%2fevil.example.com",
        "javascript:alert(1)",
        "c:/windows",
        "%ef%bc%8e%ef%bc%8e/admin",
        "．．/admin",
        "‥/admin",
        "repos/%00",
        "repos/%0d%0aHost:%20evil",
        "repos/x%23frag",
        "repos/x%3fa=1",
        "repos/x y",
        "repos/<script>",
        "repos/%",
        "repos/%g0",
    ];

    #[test]
    fn the_escape_corpus_never_leaves_base_url() {
        for input in ESCAPES {
            let got = destination(BASE, input, None);
            println!("{input:40} -> {got:?}");
            assert!(got.is_err(), "{input} was let through: {got:?}");
        }
        assert!(ESCAPES.len() >= 30);
    }

    #[test]
    fn ordinary_paths_go_under_base_url() {
        for (rest, query, want) in [
            (
                "repos/a/b/issues",
                None,
                "https://api.example.com/v3/repos/a/b/issues",
            ),
            (
                "repos/a/b",
                Some("per_page=5&page=2"),
                "https://api.example.com/v3/repos/a/b?per_page=5&page=2",
            ),
            (
                "search/code",
                Some("q=a%20b"),
                "https://api.example.com/v3/search/code?q=a%20b",
            ),
            (
                "files/a%20b.txt",
                None,
                "https://api.example.com/v3/files/a%20b.txt",
            ),
            ("v1.2/thing", None, "https://api.example.com/v3/v1.2/thing"),
            ("graphql", None, "https://api.example.com/v3/graphql"),
            ("repos/a/b/", None, "https://api.example.com/v3/repos/a/b/"),
            ("", None, "https://api.example.com/v3/"),
            ("items/a:b", None, "https://api.example.com/v3/items/a:b"),
        ] {
            assert_eq!(
                destination(BASE, rest, query).as_deref(),
                Ok(want),
                "{rest}"
            );
        }
    }
}
