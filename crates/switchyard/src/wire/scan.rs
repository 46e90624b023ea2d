//! Finding a few members of a JSON object without decoding the rest.
//!
//! A same-dialect stream is forwarded byte for byte, and the gateway needs
//! only a handful of members of each chunk (the finish reason, the usage,
//! an error). Decoding every chunk with serde, skipping the content deltas
//! member by member, costs thousands of instructions per event; walking the
//! bytes once costs a few hundred.
//! The walk checks the structure it passes (balanced and matching
//! brackets, terminated strings, the literals `true`, `false`, `null`,
//! number characters, nothing after the value); it does not validate
//! escapes or UTF-8 inside strings it skips. Anything it does not accept,
//! including keys with escapes, is left to serde, whose errors are the ones
//! callers see.

/// A position in the bytes of one JSON value.
pub struct Walker<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Walker<'a> {
    pub fn new(b: &'a [u8]) -> Walker<'a> {
        Walker { b, i: 0 }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// Walks an object, calling `f` with each key (raw, without escapes)
    /// and the walker at its value; `f` must consume the value (with
    /// [`Walker::skip`], [`Walker::raw`] or a nested walk).
    pub fn object(
        &mut self,
        mut f: impl FnMut(&'a [u8], &mut Walker<'a>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let (end, escaped) = self.string(self.i)?;
            if escaped {
                return None;
            }
            let key = &self.b[self.i + 1..end - 1];
            self.i = end;
            self.eat(b':')?;
            self.ws();
            f(key, self)?;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Walks an array, calling `f` with each element's index and the
    /// walker at it; `f` must consume the element.
    pub fn array(
        &mut self,
        mut f: impl FnMut(usize, &mut Walker<'a>) -> Option<()>,
    ) -> Option<usize> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(0);
        }
        let mut n = 0;
        loop {
            self.ws();
            f(n, self)?;
            n += 1;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    /// Consumes one value and returns its bytes.
    pub fn raw(&mut self) -> Option<&'a [u8]> {
        self.raw_at().map(|(_, raw)| raw)
    }

    /// Consumes one value and returns where it starts and its bytes.
    pub fn raw_at(&mut self) -> Option<(usize, &'a [u8])> {
        self.ws();
        let start = self.i;
        self.skip()?;
        Some((start, &self.b[start..self.i]))
    }

    /// Consumes one value.
    pub fn skip(&mut self) -> Option<()> {
        self.ws();
        let b = self.b;
        match *b.get(self.i)? {
            b'"' => self.i = self.string_end(self.i)?,
            b'{' | b'[' => {
                // Nesting as bits (1 = object), so brackets must match too.
                let (mut depth, mut kinds) = (0u32, 0u64);
                loop {
                    match *b.get(self.i)? {
                        b'"' => {
                            self.i = self.string_end(self.i)?;
                            continue;
                        }
                        c @ (b'{' | b'[') => {
                            if depth == 64 {
                                return None;
                            }
                            kinds = (kinds << 1) | u64::from(c == b'{');
                            depth += 1;
                        }
                        c @ (b'}' | b']') => {
                            if depth == 0 || (kinds & 1 == 1) != (c == b'}') {
                                return None;
                            }
                            kinds >>= 1;
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                self.i += 1;
                while matches!(
                    b.get(self.i),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end) == Some(word)).then(|| self.i = end)
    }

    /// `b[i]` is a quote; the index just past the closing quote.
    fn string_end(&self, i: usize) -> Option<usize> {
        self.string(i).map(|(end, _)| end)
    }

    /// `b[i]` is a quote; the index just past the closing quote, and
    /// whether the string has escapes. Eight bytes at a time to the next
    /// quote or backslash (both found by the zero-byte test on the word
    /// XORed with each; the lowest flagged byte is always a true one), the
    /// last few bytes one at a time.
    fn string(&self, i: usize) -> Option<(usize, bool)> {
        const ONES: u64 = u64::from_le_bytes([1; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
        const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
        let b = self.b;
        let mut j = i + 1;
        let mut escaped = false;
        loop {
            while let Some(word) = b.get(j..j + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
                let v = u64::from_le_bytes(word);
                let (q, s) = (v ^ QUOTES, v ^ BACKSLASHES);
                let hit = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
                if hit != 0 {
                    j += (hit.trailing_zeros() / 8) as usize;
                    break;
                }
                j += 8;
            }
            match *b.get(j)? {
                b'"' => return Some((j + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                _ => j += 1,
            }
        }
    }
}

/// The contents of a raw JSON string value without escapes; `None` for
/// anything else (serde decodes those), a control character inside
/// included (JSON does not allow one unescaped).
pub fn plain_str(raw: &[u8]) -> Option<&str> {
    is_plain_str(raw)
        .then(|| std::str::from_utf8(&raw[1..raw.len() - 1]).ok())
        .flatten()
}

/// Whether `raw` is a JSON string without escapes or control characters,
/// as [`plain_str`] but without checking that it is UTF-8 (for a value
/// that is only checked, in bytes already known to be UTF-8).
pub fn is_plain_str(raw: &[u8]) -> bool {
    raw.strip_prefix(b"\"")
        .and_then(|r| r.strip_suffix(b"\""))
        .is_some_and(|inner| string_end(inner).is_none())
}

/// `b` in each of a word's eight bytes.
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// The bytes of `word` equal to `b`, flagged by their high bit: the
/// zero-byte test on the word XORed with `b` in every byte. The lowest
/// flagged byte is always a true one; a borrow may also flag a byte above
/// a true one.
pub(crate) const fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ splat(b);
    x.wrapping_sub(splat(1)) & !x & splat(0x80)
}

/// The bytes of `word` below `b` (at most 0x80), flagged as by
/// [`bytes_equal`].
const fn bytes_below(word: u64, b: u8) -> u64 {
    word.wrapping_sub(splat(b)) & !word & splat(0x80)
}

/// Where a string without escapes whose contents start at `bytes[0]`
/// ends: the index of the first quote, backslash or control character in
/// `bytes` (a quote ends the string; the others are not plain); `None`
/// if there is none. Eight bytes at a time, by the lowest byte
/// [`bytes_below`] 0x20 or [`bytes_equal`] to a quote or a backslash.
pub fn string_end(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    for (w, word) in (&mut words).enumerate() {
        let v = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let hits = bytes_below(v, 0x20) | bytes_equal(v, b'"') | bytes_equal(v, b'\\');
        if hits != 0 {
            return Some(w * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let start = bytes.len() - words.remainder().len();
    (words.remainder().iter())
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| start + i)
}

/// Whether `raw` is a JSON number of digits alone that fits in `digits`
/// digits (no sign, fraction, exponent or leading zero).
pub fn plain_uint(raw: &[u8], digits: usize) -> bool {
    (1..=digits).contains(&raw.len())
        && raw.iter().all(u8::is_ascii_digit)
        && (raw == b"0" || raw[0] != b'0')
}

/// The raw bytes of the member `name` of the JSON object `object`; `None`
/// when it is absent, named twice, or the walk refuses the object (serde
/// then decides).
pub fn member<'a>(object: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut w = Walker::new(object);
    let mut found = None;
    let mut twice = false;
    w.object(|k, w| {
        if k == name.as_bytes() {
            twice |= found.is_some();
            found = Some(w.raw()?);
            Some(())
        } else {
            w.skip()
        }
    })?;
    (w.at_end() && !twice).then_some(found).flatten()
}

/// The member `name` of `object` decoded alone by serde, where one walk
/// finds it ([`member`]): `Some(None)` when it is null or not a `T`.
/// `None` where the walk does not find it, for the caller to decode the
/// whole object.
pub fn decoded_member<'a, T: serde::Deserialize<'a>>(
    object: &'a [u8],
    name: &str,
) -> Option<Option<T>> {
    let raw = member(object, name)?;
    Some(serde_json::from_slice::<Option<T>>(raw).ok().flatten())
}

/// `object` with each of `members` set to its raw value: replaced where
/// the object has it, appended (in the order given) where it does not,
/// every other byte kept. `None` when the walk refuses the object or names
/// one of `members` twice (serde then decides). The values must be JSON.
pub fn set_members(object: &[u8], members: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    // Where each member's value is, if the object has it (at most eight
    // members: more are left to serde too).
    let mut spans = [None::<(usize, usize)>; 8];
    let spans = spans.get_mut(..members.len())?;
    let mut w = Walker::new(object);
    let mut count = 0;
    w.object(|k, w| {
        count += 1;
        match members.iter().position(|(name, _)| name.as_bytes() == k) {
            Some(n) => {
                let (start, raw) = w.raw_at()?;
                if spans[n].replace((start, start + raw.len())).is_some() {
                    return None;
                }
                Some(())
            }
            None => w.skip(),
        }
    })?;
    let close = w.i - 1;
    if !w.at_end() {
        return None;
    }
    let extra: usize = members.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(object.len() + extra);
    // Replacements in the order they appear in the object.
    let mut order: Vec<usize> = (0..members.len()).filter(|&n| spans[n].is_some()).collect();
    order.sort_unstable_by_key(|&n| spans[n].map(|(s, _)| s));
    let mut at = 0;
    for n in order {
        let (start, end) = spans[n]?;
        out.extend_from_slice(&object[at..start]);
        out.extend_from_slice(members[n].1);
        at = end;
    }
    out.extend_from_slice(&object[at..close]);
    for (n, (name, value)) in members.iter().enumerate() {
        if spans[n].is_some() {
            continue;
        }
        if count > 0 {
            out.push(b',');
        }
        count += 1;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&object[close..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time check agrees with a byte-by-byte one, wherever
    /// in a word the byte it must find is and whatever surrounds it.
    #[test]
    fn a_plain_string_is_checked_as_byte_by_byte() {
        // An unescaped quote inside is not a JSON string either.
        let slow = |inner: &[u8]| !inner.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
        let fills: [u8; 5] = [b'a', b' ', 0x7f, 0x80, 0xff];
        for len in 0..=20 {
            for fill in fills {
                for at in 0..len.max(1) {
                    for odd in 0u8..=0xff {
                        let mut inner = vec![fill; len];
                        if len > 0 {
                            inner[at] = odd;
                        }
                        let mut raw = vec![b'"'];
                        raw.extend_from_slice(&inner);
                        raw.push(b'"');
                        assert_eq!(is_plain_str(&raw), slow(&inner), "{inner:?}");
                    }
                }
            }
        }
    }

    /// The top-level members of `b`, if the walk accepts it whole.
    fn members(b: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
        let mut w = Walker::new(b);
        let mut out = Vec::new();
        w.object(|k, w| {
            out.push((k, w.raw()?));
            Some(())
        })?;
        w.at_end().then_some(out)
    }

    #[test]
    fn finds_members_and_walks_nested_values() {
        let b = br#" {"id":"c1","choices":[{"index":0,"delta":{"content":"a \"q\" {[}"},"finish_reason":"stop"},{"index":1}],"usage":null,"n":-1.5e3,"t":true} "#;
        let m = members(b).unwrap();
        let keys: Vec<&[u8]> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [&b"id"[..], b"choices", b"usage", b"n", b"t"].to_vec()
        );
        assert_eq!(plain_str(m[0].1), Some("c1"));
        assert_eq!(m[2].1, b"null");
        let mut finish = None;
        let n = Walker::new(m[1].1)
            .array(|i, w| {
                if i > 0 {
                    return w.skip();
                }
                w.object(|k, w| {
                    if k == b"finish_reason" {
                        finish = plain_str(w.raw()?);
                        Some(())
                    } else {
                        w.skip()
                    }
                })
            })
            .unwrap();
        assert_eq!((n, finish), (2, Some("stop")));
        assert_eq!(members(b"{}").unwrap().len(), 0);
        assert_eq!(Walker::new(b"[ ]").array(|_, w| w.skip()), Some(0));
    }

    #[test]
    fn strings_end_where_they_end_whatever_the_alignment() {
        for pad in 0..20 {
            for tail in [r#"x""#, r#"ab\"c""#, r#"\\""#, r#"\u00e9z""#] {
                let s = format!("\"{}{tail}", "a".repeat(pad));
                let w = Walker::new(s.as_bytes());
                let (end, escaped) = w.string(0).unwrap();
                assert_eq!(end, s.len(), "{s}");
                assert_eq!(escaped, tail.contains('\\'), "{s}");
            }
        }
        assert!(Walker::new(br#""aaaaaaaaaaaaaaaa"#).string(0).is_none());
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"a":1"#,
            br#"{"a":tru}"#,
            br#"{"a":[1,2}"#,
            br#"{"a":{"b":1]}"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":"esc at end\"#,
            br#"{"a":1,}"#,
            br#"{"a":1} trailing"#,
            br#"{"k\"ey":1}"#,
            br#"{a:1}"#,
            br#"{"a":]}"#,
        ] {
            assert!(members(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(plain_str(br#""a\nb""#), None);
        assert_eq!(plain_str(b"1"), None);
        assert_eq!(plain_str(b"\"\""), Some(""));
        assert_eq!(plain_str(b"\""), None);
        assert_eq!(plain_str(b"\"caf\xc3\xa9\""), Some("café"));
        assert_eq!(plain_str(b"\"\xff\""), None);
        assert!(!is_plain_str(b"'a'"));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert!(members(deep.as_bytes()).is_none(), "nesting is bounded");
    }

    #[test]
    fn agrees_with_serde_on_what_it_accepts() {
        // Whatever the walk accepts, serde reads as an object with the same
        // keys in the same order and the same values.
        let samples = [
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}"#,
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"a":[[],{},[{}],"]",0,-0.5,1E9,"\\\"",{"b":[true,false,null]}]}"#,
        ];
        for s in samples {
            let m = members(s.as_bytes()).unwrap();
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(s).unwrap();
            let theirs: Vec<&String> = v.keys().collect();
            assert_eq!(m.len(), theirs.len());
            for ((k, raw), key) in m.into_iter().zip(theirs) {
                assert_eq!(std::str::from_utf8(k).unwrap(), key);
                let a: serde_json::Value = serde_json::from_slice(raw).unwrap();
                assert_eq!(&a, &v[key]);
            }
        }
    }

    /// A member is decoded alone where the walk finds it once; a doubled
    /// or escaped key or a broken object is left to the caller's serde.
    #[test]
    fn a_member_is_decoded_alone_or_left_to_serde() {
        let usage = |b: &str| decoded_member::<serde_json::Value>(b.as_bytes(), "usage");
        assert_eq!(
            usage(r#"{"a":[1],"usage":{"n":1}}"#),
            Some(Some(serde_json::json!({"n":1})))
        );
        assert_eq!(usage(r#"{"usage":null}"#), Some(None));
        assert_eq!(usage(r#"{"a":{"usage":1}}"#), None);
        assert_eq!(usage(r#"{"usage":1,"usage":2}"#), None);
        assert_eq!(usage(r#"{"\u0075sage":1}"#), None);
        assert_eq!(usage(r#"{"usage":1"#), None);
        let typed = decoded_member::<u32>(br#"{"usage":"many"}"#, "usage");
        assert_eq!(
            typed,
            Some(None),
            "not a T: no usage, and no second reading"
        );
    }

    #[test]
    fn member_finds_one_member_and_refuses_doubles() {
        let b = br#"{"type":"response.created","response":{"id":"r1","output":[]},"sequence_number":0}"#;
        assert_eq!(
            member(b, "response"),
            Some(&br#"{"id":"r1","output":[]}"#[..])
        );
        assert_eq!(member(b, "sequence_number"), Some(&b"0"[..]));
        assert_eq!(member(b, "error"), None);
        assert_eq!(member(br#"{"a":1,"a":2}"#, "a"), None);
        assert_eq!(member(br#"{"a":1"#, "a"), None);
    }

    #[test]
    fn set_members_replaces_in_place_and_appends_the_rest() {
        let b = br#"{"id":"up_1", "store":true,"output":[{"id":"x"}],"previous_response_id":null}"#;
        let out = set_members(
            b,
            &[
                ("id", b"\"resp_9\""),
                ("user", b"null"),
                ("store", b"false"),
            ],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"resp_9", "store":false,"output":[{"id":"x"}],"previous_response_id":null,"user":null}"#
        );
        assert_eq!(
            set_members(b"{ }", &[("a", b"1"), ("b", b"2")]).unwrap(),
            b"{ \"a\":1,\"b\":2}"
        );
        assert_eq!(set_members(br#"{"a":1,"a":2}"#, &[("a", b"3")]), None);
        assert_eq!(set_members(br#"{"a":1} x"#, &[("a", b"3")]), None);
    }

    proptest::proptest! {
        /// The word-at-a-time search finds what a byte-by-byte one does.
        #[test]
        fn string_end_is_the_first_quote_backslash_or_control(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"a\"\\\x00\x1f \x7f\x80\xe9\xffz".to_vec()),
                0..40,
            ),
            plain in 0usize..40,
        ) {
            // Mostly plain bytes, then anything.
            let mut b = vec![b'x'; plain];
            b.extend_from_slice(&bytes);
            let naive = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            proptest::prop_assert_eq!(string_end(&b), naive);
        }

        /// Setting members by splice reads back as serde's insert would
        /// leave the object (same keys, same order, same values).
        #[test]
        fn set_members_agrees_with_serde(
            keys in proptest::collection::vec("[a-e]{1,2}", 0..6),
            values in proptest::collection::vec(0u32..1000, 6),
            set in proptest::collection::vec(("[a-f]{1,2}", 0u32..9), 0..4),
        ) {
            let mut m = serde_json::Map::new();
            for (k, v) in keys.iter().zip(&values) {
                m.insert(k.clone(), serde_json::json!([v, {"k": k}]));
            }
            let object = serde_json::to_vec(&m).unwrap();
            let mut seen = std::collections::HashSet::new();
            let set: Vec<(String, Vec<u8>)> = set
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| (k, format!("{{\"v\":{v}}}").into_bytes()))
                .collect();
            let pairs: Vec<(&str, &[u8])> = set.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let out = set_members(&object, &pairs).unwrap();
            for (k, v) in &set {
                m.insert(k.clone(), serde_json::from_slice(v).unwrap());
            }
            let theirs: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(
                theirs.iter().collect::<Vec<_>>(),
                m.iter().collect::<Vec<_>>()
            );
        }
    }
}
