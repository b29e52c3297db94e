//! Strict JSON stepped over in place, the part the two one-pass readers share: the JSON-RPC
//! reader of a plain message ([`crate::mcp::jsonrpc`]) and the comparison of a whole body with
//! its `Mcp-*` headers ([`crate::mcp::agreement`]). Each reads the members it cares about
//! itself and hands everything else to a [`Cursor`], which checks it as RFC 8259 has it and
//! gives up (`None`) on anything it does not take, for its caller's slower reader to judge.

/// Containers skipped inside one another, at most (one bit each in a `u64`).
pub const MAX_DEPTH: u32 = 64;

/// Where the first byte from `at` on that ends a run of plain string is (`"`, `\`, a control
/// character or a byte of a UTF-8 sequence), eight bytes at a time: a word is read past the
/// string's end when the body goes on, so a short string (most member names and values) costs
/// one word.
#[inline(always)]
fn find_stop(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (quote, backslash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
        // A byte's high bit is set for a zero byte of `quote` or `backslash`, a byte of `w`
        // below 0x20, or one at 0x80 and above; borrows only mark bytes above the first zero or
        // control byte, so the lowest mark is exact.
        let marks = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w
            | w)
            & HIGH;
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80).map(|p| at + p)
}

/// What a UTF-8 lead byte (0x80 or above) says of its sequence, from RFC 3629's table of
/// well-formed ones: how many continuation bytes follow, and the range the first of them must
/// lie in (the others lie in 0x80..=0xBF); `None` for a byte that starts no sequence.
#[inline(always)]
pub fn utf8_lead(b: u8) -> Option<(u8, u8, u8)> {
    Some(match b {
        0xc2..=0xdf => (1, 0x80, 0xbf),
        0xe0 => (2, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
        0xed => (2, 0x80, 0x9f),
        0xf0 => (3, 0x90, 0xbf),
        0xf1..=0xf3 => (3, 0x80, 0xbf),
        0xf4 => (3, 0x80, 0x8f),
        _ => return None,
    })
}

/// A place in a body, and how strings are stepped over.
pub struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
    /// Whether a `\u` escape of a lone surrogate passes in a string stepped over: serde_json
    /// skips such a string without pairing surrogates, and the JSON-RPC reader must read
    /// exactly what it reads; the agreement scan leaves them to its checker instead.
    lone_surrogates: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`; `lone_surrogates` as the field says.
    pub fn new(bytes: &'a [u8], lone_surrogates: bool) -> Cursor<'a> {
        Cursor { bytes, at: 0, lone_surrogates }
    }

    #[inline(always)]
    pub fn ws(&mut self) {
        // Compact JSON has none: a byte above the space ends it at once.
        while let Some(&b) = self.bytes.get(self.at) {
            if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return;
            }
            self.at += 1;
        }
    }

    #[inline(always)]
    // The next byte of the body, not an iterator's item: the readers step and peek by hand.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    #[inline(always)]
    pub fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// `b`, after any whitespace: compact JSON has it at once.
    #[inline(always)]
    pub fn eat_ws(&mut self, b: u8) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b) {
            self.at += 1;
            return Some(());
        }
        self.ws();
        self.eat(b)
    }

    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The rest of a string free of escapes (its opening quote read), its bytes well-formed
    /// UTF-8.
    #[inline(always)]
    pub fn plain(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        loop {
            self.at = find_stop(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return self.bytes.get(start..self.at - 1);
                }
                0x80.. => self.utf8()?,
                _ => return None,
            }
        }
    }

    /// The rest of a string not compared (its opening quote read).
    #[inline(always)]
    pub fn skip_string(&mut self) -> Option<()> {
        loop {
            self.at = find_stop(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.escape()?,
                0x80.. => self.utf8()?,
                _ => return None,
            }
        }
    }

    /// An escape, at its `\`. A `\u` of a surrogate passes only where `lone_surrogates` says:
    /// whether it must be paired depends on whether serde_json reads the string or skips it.
    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                let unit = hex.iter().try_fold(0u32, |unit, &h| Some(unit * 16 + char::from(h).to_digit(16)?))?;
                if (0xd800..=0xdfff).contains(&unit) && !self.lone_surrogates {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// A UTF-8 sequence at its lead byte (0x80 or above), well-formed as RFC 3629's table has it.
    fn utf8(&mut self) -> Option<()> {
        let (more, low, high) = utf8_lead(self.bytes[self.at])?;
        let more = usize::from(more);
        let rest = self.bytes.get(self.at + 1..self.at + 1 + more)?;
        let well_formed = (low..=high).contains(&rest[0]) && rest[1..].iter().all(|&b| (0x80..=0xbf).contains(&b));
        self.at += 1 + more;
        well_formed.then_some(())
    }

    /// The grammar of a number not read, at its first byte.
    fn skip_number(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    pub fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
    }

    /// One value not read, however nested (to [`MAX_DEPTH`]), checked as strict JSON.
    pub fn skip(&mut self) -> Option<()> {
        // One bit per open container, set for an array.
        let mut arrays = 0u64;
        let mut depth = 0u32;
        'value: loop {
            self.ws();
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    self.skip_string()?;
                }
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if *self.bytes.get(self.at)? == close {
                        self.at += 1;
                    } else {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        if open == b'[' {
                            arrays |= 1 << depth;
                        } else {
                            arrays &= !(1 << depth);
                            self.skip_key()?;
                        }
                        depth += 1;
                        continue 'value;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return None,
            }
            // A value ended: what follows it in its container, until one needs another value.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let array = arrays & (1 << (depth - 1)) != 0;
                match (self.next()?, array) {
                    (b',', true) => continue 'value,
                    (b',', false) => {
                        self.ws();
                        self.skip_key()?;
                        continue 'value;
                    }
                    (b']', true) | (b'}', false) => depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// A member name not read and its `:`.
    #[inline(always)]
    pub fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.skip_string()?;
        self.eat_ws(b':')
    }
}

/// A reader built on a [`Cursor`] steps with it as its own.
macro_rules! on_cursor {
    ($reader:ident) => {
        impl<'a> std::ops::Deref for $reader<'a> {
            type Target = $crate::mcp::json::Cursor<'a>;
            fn deref(&self) -> &Self::Target {
                &self.cursor
            }
        }
        impl<'a> std::ops::DerefMut for $reader<'a> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.cursor
            }
        }
    };
}
pub(crate) use on_cursor;

#[cfg(test)]
mod tests {
    #[test]
    fn the_stop_byte_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
                    // Bytes around the stop values that must not be taken for one.
                    let mut bytes: Vec<u8> =
                        (0..len).map(|i| [b'!', b'#', b'[', b']', b' ', 0x7f, b'a'][i % 7]).collect();
                    let expected = (at < len).then(|| {
                        bytes[at] = stop;
                        at
                    });
                    for from in 0..=at.min(len) {
                        assert_eq!(super::find_stop(&bytes, from), expected, "{bytes:?} from {from}");
                    }
                }
            }
        }
        assert_eq!(super::find_stop(b"ab", 3), None);
    }
}
