//! Compression of a chunk of samples (sorted by time, unique timestamps).
//!
//! Layout (version 1):
//! ```text
//! u8 version | varint count | varint ts_len | ts section (ts_len bytes) | value bits
//! ts section: zigzag varint first ts, zigzag varint first delta, then zigzag varint
//!             delta-of-delta per sample (regular spacing costs one byte per sample)
//! value bits: Gorilla XOR encoding (Pelkonen et al., VLDB 2015): first value raw, then
//!             '0' for a repeat, '10'+bits inside the previous window, '11'+5b lead+6b len+bits
//! ```
//! Decoding checks every bound and returns an error on corrupt input; it never panics.

const VERSION: u8 = 1;

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: &str) -> Result<T, CodecError> {
    Err(CodecError(msg.to_owned()))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let Some(&b) = buf.get(*pos) else {
            return err("truncated varint");
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            return err("varint overflows 64 bits");
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return err("varint longer than 10 bytes");
        }
    }
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    fn new(out: Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }
    /// Writes the low `n` bits of `v` (n ≤ 64), most significant first.
    fn write(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let free = 64 - self.nbits;
        if n <= free {
            self.acc |= if n == 64 { v } else { v << (free - n) };
            self.nbits += n;
        } else {
            let hi = n - free;
            self.acc |= v >> hi;
            self.nbits = 64;
            self.flush_full();
            self.acc = v << (64 - hi);
            self.nbits = hi;
        }
        if self.nbits == 64 {
            self.flush_full();
        }
    }
    fn flush_full(&mut self) {
        self.out.extend_from_slice(&self.acc.to_be_bytes());
        self.acc = 0;
        self.nbits = 0;
    }
    fn finish(mut self) -> Vec<u8> {
        let bytes = self.nbits.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_be_bytes()[..bytes]);
        self.out
    }
}

/// Reads bits most-significant first through a 64-bit accumulator refilled a word at a time.
struct BitReader<'a> {
    buf: &'a [u8],
    /// Next byte of `buf` not yet in the accumulator.
    byte: usize,
    /// Valid bits, left-aligned.
    acc: u64,
    nbits: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader {
            buf,
            byte: 0,
            acc: 0,
            nbits: 0,
        }
    }

    /// Tops the accumulator up to at least 57 bits (fewer only at the end of the input).
    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.buf.get(self.byte..self.byte + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(word);
            let w = u64::from_be_bytes(a);
            self.acc |= w >> self.nbits;
            let take = (63 - self.nbits) / 8;
            self.byte += take as usize;
            self.nbits += take * 8;
        } else {
            while self.nbits <= 56 {
                let Some(&b) = self.buf.get(self.byte) else {
                    break;
                };
                self.acc |= u64::from(b) << (56 - self.nbits);
                self.byte += 1;
                self.nbits += 8;
            }
        }
    }

    /// The next `n` (≤ 56) bits without consuming them; zeros past the end of the input.
    #[inline]
    fn peek(&mut self, n: u32) -> u64 {
        if self.nbits < n {
            self.refill();
        }
        self.acc >> (64 - n)
    }

    #[inline]
    fn skip(&mut self, n: u32) -> Result<(), CodecError> {
        if self.nbits < n {
            self.refill();
            if self.nbits < n {
                return err("truncated value bits");
            }
        }
        self.acc = if n == 64 { 0 } else { self.acc << n };
        self.nbits -= n;
        Ok(())
    }

    /// Reads `n` bits (n ≤ 64).
    #[inline]
    fn read(&mut self, n: u32) -> Result<u64, CodecError> {
        if n == 0 {
            return Ok(0);
        }
        if n > 56 {
            let hi = self.read(n - 32)?;
            let lo = self.read(32)?;
            return Ok((hi << 32) | lo);
        }
        let v = self.peek(n);
        self.skip(n)?;
        Ok(v)
    }

    /// The next 13 bits without consuming them (zeros past the end).
    #[inline]
    fn peek13(&mut self) -> u64 {
        self.peek(13)
    }
}

/// Encodes samples sorted by strictly increasing timestamp.
pub fn encode(ts: &[i64], values: &[f64]) -> Vec<u8> {
    debug_assert_eq!(ts.len(), values.len());
    let n = ts.len().min(values.len());
    let mut tsb = Vec::with_capacity(n + 16);
    if n > 0 {
        put_varint(&mut tsb, zigzag(ts[0]));
    }
    if n > 1 {
        let d0 = ts[1].wrapping_sub(ts[0]);
        put_varint(&mut tsb, zigzag(d0));
        let mut prev_delta = d0;
        for i in 2..n {
            let d = ts[i].wrapping_sub(ts[i - 1]);
            put_varint(&mut tsb, zigzag(d.wrapping_sub(prev_delta)));
            prev_delta = d;
        }
    }
    let mut head = Vec::with_capacity(tsb.len() + n * 2 + 24);
    head.push(VERSION);
    put_varint(&mut head, n as u64);
    put_varint(&mut head, tsb.len() as u64);
    head.extend_from_slice(&tsb);
    let mut w = BitWriter::new(head);
    if n == 0 {
        return w.finish();
    }
    let mut prev = values[0].to_bits();
    w.write(prev, 64);
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for v in &values[1..n] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        if x == 0 {
            w.write(0, 1);
        } else {
            let l = x.leading_zeros().min(31);
            let t = x.trailing_zeros();
            if lead != u32::MAX && l >= lead && t >= trail {
                w.write(0b10, 2);
                w.write(x >> trail, 64 - lead - trail);
            } else {
                let len = 64 - l - t;
                w.write(0b11, 2);
                w.write(u64::from(l), 5);
                w.write(u64::from(len - 1), 6);
                w.write(x >> t, len);
                lead = l;
                trail = t;
            }
        }
        prev = bits;
    }
    w.finish()
}

/// Number of samples in an encoded chunk, read from its header.
pub fn count(buf: &[u8]) -> Result<usize, CodecError> {
    if buf.first() != Some(&VERSION) {
        return err("unknown chunk version");
    }
    let mut pos = 1;
    Ok(get_varint(buf, &mut pos)? as usize)
}

/// Decodes a chunk, appending to `ts` and `values`.
pub fn decode_into(buf: &[u8], ts: &mut Vec<i64>, values: &mut Vec<f64>) -> Result<(), CodecError> {
    if buf.first() != Some(&VERSION) {
        return err("unknown chunk version");
    }
    let mut pos = 1;
    let n = get_varint(buf, &mut pos)? as usize;
    let ts_len = get_varint(buf, &mut pos)? as usize;
    let ts_end = pos.checked_add(ts_len).filter(|e| *e <= buf.len());
    let Some(ts_end) = ts_end else {
        return err("timestamp section longer than the chunk");
    };
    // Every sample costs at least one byte of timestamps (after the first) and one bit of value.
    if n > ts_len.saturating_add(1) || n > (buf.len() - ts_end).saturating_mul(8).saturating_add(1)
    {
        return err("sample count larger than the chunk can hold");
    }
    if n == 0 {
        return Ok(());
    }
    ts.reserve(n);
    values.reserve(n);
    let tsbuf = &buf[..ts_end];
    let mut t = unzigzag(get_varint(tsbuf, &mut pos)?);
    ts.push(t);
    if n > 1 {
        let mut delta = unzigzag(get_varint(tsbuf, &mut pos)?);
        t = t.wrapping_add(delta);
        ts.push(t);
        for _ in 2..n {
            delta = delta.wrapping_add(unzigzag(get_varint(tsbuf, &mut pos)?));
            t = t.wrapping_add(delta);
            ts.push(t);
        }
    }
    if pos != ts_end {
        return err("timestamp section has trailing bytes");
    }
    let mut r = BitReader::new(&buf[ts_end..]);
    let mut prev = r.read(64)?;
    values.push(f64::from_bits(prev));
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for _ in 1..n {
        // Control bits and the window header in one look: '0', '10' or '11' + 5 + 6 bits.
        let head = r.peek13();
        if head & (1 << 12) == 0 {
            r.skip(1)?;
        } else if head & (1 << 11) == 0 {
            r.skip(2)?;
            if lead == u32::MAX {
                return err("value reuses a window before one was set");
            }
            let len = 64 - lead - trail;
            prev ^= r.read(len)? << trail;
        } else {
            r.skip(13)?;
            let l = ((head >> 6) & 0x1f) as u32;
            let len = (head & 0x3f) as u32 + 1;
            if l + len > 64 {
                return err("value window exceeds 64 bits");
            }
            let t = 64 - l - len;
            prev ^= r.read(len)? << t;
            lead = l;
            trail = t;
        }
        values.push(f64::from_bits(prev));
    }
    Ok(())
}

/// Decodes a chunk into new vectors.
pub fn decode(buf: &[u8]) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
    let (mut ts, mut values) = (Vec::new(), Vec::new());
    decode_into(buf, &mut ts, &mut values)?;
    Ok((ts, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64], values: &[f64]) {
        let buf = encode(ts, values);
        let (t2, v2) = decode(&buf).expect("decodes");
        assert_eq!(t2, ts);
        let b1: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let b2: Vec<u64> = v2.iter().map(|v| v.to_bits()).collect();
        assert_eq!(b1, b2);
        assert_eq!(count(&buf).expect("count"), ts.len());
    }

    #[test]
    fn fixed_cases() {
        round_trip(&[], &[]);
        round_trip(&[5], &[1.5]);
        round_trip(&[1, 2], &[-0.0, 0.0]);
        round_trip(&[0, 1000, 2000, 3000], &[1.0, 1.0, 1.0, 1.0]);
        round_trip(
            &[i64::MIN, 0, i64::MAX],
            &[f64::MAX, f64::MIN_POSITIVE, 5e-324],
        );
        round_trip(&[1, 3, 7, 8], &[f64::MAX, -f64::MAX, 1e-300, 12345.678]);
    }

    #[test]
    fn regular_series_compresses_well() {
        let ts: Vec<i64> = (0..10_000).map(|i| 1_700_000_000_000 + i * 1000).collect();
        let vals: Vec<f64> = (0..10_000)
            .map(|i| 300.0 + ((i / 10) % 7) as f64 * 0.25)
            .collect();
        let buf = encode(&ts, &vals);
        // about one byte of time and a few bits of value per sample
        assert!(buf.len() < 10_000 * 3, "{} bytes", buf.len());
        round_trip(&ts, &vals);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let ts: Vec<i64> = (0..100).map(|i| i * 10).collect();
        let vals: Vec<f64> = (0..100).map(|i| i as f64 * 1.1).collect();
        let buf = encode(&ts, &vals);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "truncated at {cut} decoded");
        }
        assert!(decode(&[2, 0, 0]).is_err());
        assert!(
            decode(&[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn round_trips(gaps in proptest::collection::vec(1i64..1_000_000_000, 0..300),
                       start in -1_000_000_000_000i64..4_000_000_000_000,
                       vals in proptest::collection::vec(any::<f64>(), 300)) {
            let mut ts = Vec::with_capacity(gaps.len());
            let mut t = start;
            for g in &gaps { t += g; ts.push(t); }
            round_trip(&ts, &vals[..ts.len()]);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let mut b = bytes.clone();
            if !b.is_empty() { b[0] = 1; }
            let _ = decode(&b);
        }
    }
}
