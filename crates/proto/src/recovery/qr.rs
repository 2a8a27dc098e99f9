//! Recovery codes as QR codes drawn in text, for a phone camera.

use qrcodegen::{QrCode, QrCodeEcc, QrSegment, Version};

use super::RecoveryCode;

/// Light modules around the symbol. The standard asks for 4; phone readers find the
/// symbol with 2, and 2 keep it within 21 rows of an 80×25 console.
const QUIET: i32 = 2;

/// The code's QR symbol (its 119 symbols in alphanumeric mode: version 5, level M) as
/// rows of text: each character is two modules stacked (`█ ▀ ▄` and space), light
/// modules drawn, for a terminal with a dark background.
pub fn qr_rows(code: &RecoveryCode) -> Vec<String> {
    let text = code.compact();
    let segs = QrSegment::make_segments(&text);
    // 119 alphanumeric symbols always fit: version 5-M holds 122.
    let Ok(qr) = QrCode::encode_segments_advanced(
        &segs,
        QrCodeEcc::Medium,
        Version::MIN,
        Version::MAX,
        None,
        true,
    ) else {
        return Vec::new();
    };
    let size = qr.size();
    let light = |x: i32, y: i32| !qr.get_module(x, y);
    let mut rows = Vec::new();
    let mut y = -QUIET;
    while y < size + QUIET {
        let row: String = (-QUIET..size + QUIET)
            .map(|x| match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            })
            .collect();
        rows.push(row);
        y += 2;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::{Curve, EcBackend, RustCrypto, random_scalar};
    use crate::recovery::RequestCode;

    #[test]
    fn version_5_fits_a_console() {
        let p = || {
            RustCrypto
                .mul_base(
                    Curve::P521,
                    &random_scalar(Curve::P521, &mut latchkey_sys::rng::os()),
                )
                .unwrap()
        };
        let code = RequestCode::new(&p(), &p());
        let qr = QrCode::encode_segments_advanced(
            &QrSegment::make_segments(&code.code().compact()),
            QrCodeEcc::Medium,
            Version::MIN,
            Version::MAX,
            None,
            true,
        )
        .unwrap();
        assert_eq!(qr.version().value(), 5);
        assert_eq!(qr.size(), 37);
        let rows = qr_rows(code.code());
        assert_eq!(rows.len(), 21);
        assert!(rows.iter().all(|r| r.chars().count() == 41));
        // The quiet zone is light all round.
        assert!(rows[0].chars().all(|c| c == '█'));
        assert!(
            rows.iter()
                .all(|r| r.starts_with("██") && r.ends_with("██"))
        );
    }
}
