//! VRRP v2/v3 over IPv4/IPv6: decoding never panics, and whatever decodes re-encodes to a
//! message that decodes to the same advert and passes its own checksum.
#![no_main]
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use xvrrpd::vrrp::packet::{verify, Advertisement, ChecksumStyle};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let v6 = flags & 1 != 0;
    let Ok(adv) = Advertisement::decode(msg, v6) else {
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    } else {
        ("192.0.2.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    };
    let style = match (adv.version, flags & 2 != 0) {
        (2, _) => ChecksumStyle::NoPseudoHeader,
        (_, true) if !v6 => ChecksumStyle::NoPseudoHeader,
        _ => ChecksumStyle::PseudoHeader,
    };
    // The addresses must fit the family the decoder was told about.
    if adv.addresses.iter().any(|a| a.is_ipv6() != v6) {
        panic!("decoded {adv:?} with addresses of the wrong family");
    }
    let enc = adv.encode(style, (src, dst));
    assert!(
        verify(&enc, style, (src, dst)),
        "own checksum fails: {adv:?}"
    );
    let again = Advertisement::decode(&enc, v6).expect("re-encoded advert decodes");
    assert_eq!(again, adv);
});
