//! Base64 (RFC 4648, with padding) for weights inside JSON artefacts, and weight (de)serialisation.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use crate::error::{NnError, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>> {
    let bad = |why: &str| NnError::Artifact(format!("weights are not base64: {why}"));
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(bad(&format!("character {:?}", c as char))),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The module's parameters as burnpack bytes.
pub(crate) fn module_bytes<M: Module>(m: M) -> Result<Vec<u8>> {
    let bytes = m
        .into_record()
        .into_bytes()
        .map_err(|e| NnError::Backend(format!("cannot serialise the weights: {e:?}")))?;
    Ok(bytes.to_vec())
}

/// Loads burnpack bytes into a module of the same architecture.
pub(crate) fn load_module<M: Module>(m: M, bytes: Vec<u8>) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| NnError::Artifact(format!("cannot read the weights: {e:?}")))?;
    m.try_load_record(record)
        .map_err(|e| NnError::Artifact(format!("weights do not fit the architecture: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..10 {
            let data: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            let s = b64_encode(&data);
            assert_eq!(s.len() % 4, 0);
            assert_eq!(b64_decode(&s).ok(), Some(data));
        }
        assert_eq!(b64_encode(b"Man"), "TWFu");
        assert_eq!(b64_encode(b"Ma"), "TWE=");
        assert!(b64_decode("TW*u").is_err());
    }
}
