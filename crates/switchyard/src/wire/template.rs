//! A stream chunk like the one before: most chunks of an answer differ
//! from the last only in a few strings (the text, OpenAI's random
//! `obfuscation` padding), so a chunk that matches a template of its
//! predecessor byte for byte outside those strings is known without being
//! walked.
//!
//! A [`Template`] is a chunk the caller has already read (and vouches
//! for) with *holes*: the contents of some of its strings. Another chunk
//! fills it when it has the template's bytes everywhere else and, in each
//! hole, a string with no quote, backslash or control character: the
//! same JSON, token for token, with other strings in the holes.

use super::scan::string_end;

/// A read chunk and the strings in it that may differ in the next.
#[derive(Debug, Default)]
pub struct Template {
    bytes: Vec<u8>,
    /// Each hole's contents within `bytes`: from after its opening quote
    /// to its closing quote, in order.
    holes: Vec<(usize, usize)>,
    /// The hole whose contents [`Template::fill`] returns.
    marked: Option<usize>,
}

/// Which strings of a template's chunk are its holes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holes {
    /// Every string that is a value (not followed by a colon): for chunks
    /// whose walk accepts any plain string as any of its values.
    Values,
    /// Only the marked string: for chunks with a value that says what
    /// the chunk is (Anthropic's `type`).
    Marked,
}

impl Template {
    /// A template of `chunk` with `holes`, `mark` (where a string's
    /// contents start in `chunk`) the hole [`Template::fill`] returns.
    /// `None` if a string (a key too) has an escape (its end is not found
    /// by looking for the next quote) or a control character, if `chunk`
    /// has an unterminated string, or if `mark` is not where a value
    /// string's contents start.
    pub fn of(chunk: &[u8], mark: Option<usize>, holes: Holes) -> Option<Template> {
        let mut t = Template::default();
        t.set(chunk, mark, holes).then_some(t)
    }

    /// [`Template::of`] in place, keeping this template's allocations;
    /// `false` (and the template emptied) where that is `None`.
    pub fn set(&mut self, chunk: &[u8], mark: Option<usize>, holes: Holes) -> bool {
        self.bytes.clear();
        self.holes.clear();
        self.marked = None;
        let mut at = 0;
        while let Some(q) = memchr::memchr(b'"', &chunk[at..]) {
            let open = at + q + 1;
            let close = match string_end(&chunk[open..]) {
                Some(len) if chunk[open + len] == b'"' => open + len,
                _ => {
                    self.holes.clear();
                    return false;
                }
            };
            let value = !chunk[close + 1..].trim_ascii_start().starts_with(b":");
            if value && mark == Some(open) {
                self.marked = Some(self.holes.len());
                self.holes.push((open, close));
            } else if value && holes == Holes::Values {
                self.holes.push((open, close));
            }
            at = close + 1;
        }
        if mark.is_some() && self.marked.is_none() {
            self.holes.clear();
            return false;
        }
        self.bytes.extend_from_slice(chunk);
        true
    }

    /// The marked hole's contents in `data` (empty if no hole is marked),
    /// if `data` fills this template: its bytes outside the holes are the
    /// template's, and each hole holds a string with no quote, backslash
    /// or control character. `None` otherwise, and always for an empty
    /// template. The contents are bytes of `data`, not checked for UTF-8.
    pub fn fill<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        if self.bytes.is_empty() {
            return None;
        }
        // `t` in the template and `d` in `data`: where the bytes still to
        // compare start (after a hole, its closing quote).
        let (mut t, mut d) = (0, 0);
        let mut marked: &[u8] = &[];
        for (i, &(open, close)) in self.holes.iter().enumerate() {
            // Most holes hold what the template's did (an id, a model):
            // the bytes before and the string, up to its quote, at once.
            let same = &self.bytes[t..=close];
            let start = if data.get(d..d + same.len()) == Some(same) {
                d += same.len() - 1;
                d - (close - open)
            } else {
                let fixed = &self.bytes[t..open];
                if data.get(d..d + fixed.len())? != fixed {
                    return None;
                }
                let start = d + fixed.len();
                let len = string_end(&data[start..])?;
                d = start + len;
                if data[d] != b'"' {
                    return None;
                }
                start
            };
            if self.marked == Some(i) {
                marked = &data[start..d];
            }
            t = close;
        }
        (data[d..] == self.bytes[t..]).then_some(marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"obfuscation":"x3Tq"}"#;

    fn content_at(chunk: &str) -> usize {
        chunk.find(r#""content":""#).unwrap() + r#""content":""#.len()
    }

    #[test]
    fn a_chunk_with_other_strings_fills_the_template() {
        let t = Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK)), Holes::Values).unwrap();
        let next = CHUNK.replace("Hello", " world: {yes}").replace("x3Tq", "Q");
        assert_eq!(t.fill(next.as_bytes()), Some(&b" world: {yes}"[..]));
        assert_eq!(t.fill(CHUNK.as_bytes()), Some(&b"Hello"[..]));
        let empty = CHUNK.replace("Hello", "").replace("x3Tq", "");
        assert_eq!(t.fill(empty.as_bytes()), Some(&b""[..]));
        // Multi-byte characters are bytes like any other.
        let accented = CHUNK.replace("Hello", "café");
        assert_eq!(t.fill(accented.as_bytes()), Some("café".as_bytes()));
    }

    #[test]
    fn anything_else_does_not() {
        let t = Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK)), Holes::Values).unwrap();
        for other in [
            // A key, a number, a null, punctuation, spacing: not holes.
            CHUNK.replace(r#""content""#, r#""refusal""#),
            CHUNK.replace(r#""index":0"#, r#""index":1"#),
            CHUNK.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
            CHUNK.replace("}]", "} ]"),
            // Escapes, quotes and control characters in a hole.
            CHUNK.replace("Hello", r#"a\"b"#),
            CHUNK.replace("Hello", r#"a\u0041"#),
            CHUNK.replace("Hello", "a\nb"),
            CHUNK.replace("Hello", r#"a","usage":{"x":1},"b":""#),
            // Cut short, or longer.
            CHUNK[..CHUNK.len() - 1].to_owned(),
            CHUNK[..content_at(CHUNK) + 2].to_owned(),
            format!("{CHUNK} "),
            String::new(),
        ] {
            assert_eq!(t.fill(other.as_bytes()), None, "{other}");
        }
        assert_eq!(Template::default().fill(CHUNK.as_bytes()), None);
    }

    #[test]
    fn only_plain_value_strings_become_holes() {
        // A string with an escape: its end is not where the next quote is.
        let escaped = CHUNK.replace("Hello", r#"a\"b"#);
        assert!(Template::of(escaped.as_bytes(), None, Holes::Values).is_none());
        assert!(Template::of(br#"{"a":"open"#, None, Holes::Values).is_none());
        assert!(Template::of(b"{\"a\":\"x\ty\"}", None, Holes::Values).is_none());
        // The mark must be where a value string starts.
        assert!(
            Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK) + 1), Holes::Values).is_none()
        );
        assert!(Template::of(CHUNK.as_bytes(), Some(2), Holes::Values).is_none());
        // Unmarked, the fill is empty; keys are compared, values are not.
        let t = Template::of(br#"{"a" : "x", "b":["y", 1]}"#, None, Holes::Values).unwrap();
        assert_eq!(t.fill(br#"{"a" : "", "b":["yy", 1]}"#), Some(&b""[..]));
        assert_eq!(t.fill(br#"{"c" : "", "b":["yy", 1]}"#), None);
        // A template is reset in place, and emptied by a chunk it refuses.
        let mut t = Template::default();
        assert!(t.set(CHUNK.as_bytes(), None, Holes::Values));
        assert_eq!(t.fill(CHUNK.as_bytes()), Some(&b""[..]));
        assert!(!t.set(escaped.as_bytes(), None, Holes::Values));
        assert_eq!(t.fill(CHUNK.as_bytes()), None);
    }

    #[test]
    fn a_marked_template_has_one_hole() {
        let delta =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        let at = delta.find("Hi").unwrap();
        let t = Template::of(delta.as_bytes(), Some(at), Holes::Marked).unwrap();
        let next = delta.replace("Hi", " there");
        assert_eq!(t.fill(next.as_bytes()), Some(&b" there"[..]));
        // The kind of event is not a hole.
        let other = delta.replace("text_delta", "thinking_delt");
        assert_eq!(t.fill(other.as_bytes()), None);
        let other = delta.replace("content_block_delta", "content_block_start");
        assert_eq!(t.fill(other.as_bytes()), None);
        // Marked, the mark must be there.
        assert!(Template::of(delta.as_bytes(), None, Holes::Marked).is_some());
        assert!(Template::of(delta.as_bytes(), Some(at + 1), Holes::Marked).is_none());
    }
}
