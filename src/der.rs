//! Just enough DER reading to take the RSA members out of the PKCS#8 document aws-lc-rs produces
//! for a generated key (aws-lc-rs has no accessor for private components). It reads DER, it does
//! no cryptography.

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

#[cfg(test)]
mod tests {
    use super::*;

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
