//! Just enough DER to take the RSA members out of the PKCS#8 document aws-lc-rs produces for a
//! generated key (aws-lc-rs has no accessor for private components), and to write the PKCS#1
//! `RSAPublicKey` that aws-lc-rs parses a JWK's `n` and `e` from. It does no cryptography.

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

/// The members of a PKCS#1 `RSAPrivateKey`, as unsigned big-endian bytes without leading zeros.
#[derive(PartialEq, Eq)]
pub struct RsaPrivateParts {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qi: Vec<u8>,
}

/// Reads one TLV from `input`, returning (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match read_tlv(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

fn unsigned(integer: &[u8]) -> Vec<u8> {
    let start = integer.iter().position(|&b| b != 0).unwrap_or(integer.len());
    integer[start..].to_vec()
}

/// Parses a PKCS#1 `RSAPrivateKey` (two-prime, version 0).
pub fn parse_rsa_private_key(der: &[u8]) -> Option<RsaPrivateParts> {
    let (mut body, _) = expect(der, SEQUENCE)?;
    let mut ints = Vec::with_capacity(9);
    for _ in 0..9 {
        let (int, rest) = expect(body, INTEGER)?;
        ints.push(unsigned(int));
        body = rest;
    }
    if !ints[0].is_empty() {
        return None; // version 1 is multi-prime, which JWK's `oth` would need
    }
    let mut it = ints.into_iter().skip(1);
    Some(RsaPrivateParts {
        n: it.next()?,
        e: it.next()?,
        d: it.next()?,
        p: it.next()?,
        q: it.next()?,
        dp: it.next()?,
        dq: it.next()?,
        qi: it.next()?,
    })
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 v1 `PrivateKeyInfo`.
pub fn pkcs1_from_pkcs8(der: &[u8]) -> Option<&[u8]> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (_version, rest) = expect(body, INTEGER)?;
    let (_algorithm, rest) = expect(rest, SEQUENCE)?;
    let (private_key, _) = expect(rest, OCTET_STRING)?;
    Some(private_key)
}

/// A DER length: short form below 128, else long form.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
}

/// A non-negative INTEGER from unsigned big-endian bytes (leading zeros dropped, a zero byte
/// added when the high bit is set).
fn push_unsigned(out: &mut Vec<u8>, value: &[u8]) {
    let skip = value.iter().take_while(|b| **b == 0).count().min(value.len().saturating_sub(1));
    let value = &value[skip..];
    let pad = value.first().is_none_or(|b| b & 0x80 != 0);
    out.push(INTEGER);
    push_len(out, value.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend(value);
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub fn rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 12);
    push_unsigned(&mut body, n);
    push_unsigned(&mut body, e);
    let mut out = vec![SEQUENCE];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_rsa_public_key_that_reads_back() -> Result<(), &'static str> {
        let n = [0xc3; 256];
        let der = rsa_public_key(&n, &[1, 0, 1]);
        let (body, rest) = expect(&der, SEQUENCE).ok_or("not a sequence")?;
        assert!(rest.is_empty());
        let (modulus, rest) = expect(body, INTEGER).ok_or("no modulus")?;
        assert_eq!(modulus.len(), 257, "a zero byte keeps the high-bit modulus positive");
        assert_eq!(&modulus[1..], &n[..]);
        let (exponent, rest) = expect(rest, INTEGER).ok_or("no exponent")?;
        assert_eq!((exponent, rest), (&[1u8, 0, 1][..], &[][..]));
        assert_eq!(rsa_public_key(&[0, 0, 5], &[3]), vec![SEQUENCE, 6, INTEGER, 1, 5, INTEGER, 1, 3]);
        Ok(())
    }

    #[test]
    fn reads_long_form_lengths_and_strips_sign_bytes() -> Result<(), &'static str> {
        // SEQUENCE { INTEGER 0, INTEGER 0x00ff (8 times) } with a long-form length on one integer.
        let mut body = vec![INTEGER, 1, 0];
        body.extend([INTEGER, 0x81, 2, 0x00, 0xff]);
        for _ in 0..7 {
            body.extend([INTEGER, 2, 0x01, 0x02]);
        }
        let mut der = vec![SEQUENCE, body.len() as u8];
        der.extend(&body);
        let parts = parse_rsa_private_key(&der).ok_or("parse failed")?;
        assert_eq!(parts.n, vec![0xff]);
        assert_eq!(parts.qi, vec![0x01, 0x02]);
        Ok(())
    }

    #[test]
    fn rejects_truncated_and_wrong_tags() {
        assert!(parse_rsa_private_key(&[SEQUENCE, 5, INTEGER, 1]).is_none());
        assert!(parse_rsa_private_key(&[OCTET_STRING, 0]).is_none());
        assert!(pkcs1_from_pkcs8(&[]).is_none());
        assert!(read_tlv(&[SEQUENCE, 0x85, 1, 1, 1, 1, 1]).is_none());
    }
}
