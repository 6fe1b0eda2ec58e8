//! SENS's text rules: Korean phone numbers and EUC-KR lengths (SMS ≤ 90 bytes, LMS ≤ 2000,
//! subject ≤ 40).

use crate::contract::ContractError;

/// SENS: SMS content ≤ 90 EUC-KR bytes, LMS ≤ 2000, subject ≤ 40.
pub const SMS_BYTES_MAX: usize = 90;
pub const LMS_BYTES_MAX: usize = 2000;
pub const LMS_SUBJECT_BYTES_MAX: usize = 40;

/// Turns `010-1234-5678`, `(010) 1234 5678`, `+82 10-1234-5678` or `+82 010…` into the
/// domestic digits-only form SENS takes (`01012345678`). `None` if it is not a Korean number.
pub fn normalize_korean_number(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let domestic = if international {
        let national = digits.strip_prefix("82")?;
        let national = national.strip_prefix('0').unwrap_or(national);
        format!("0{national}")
    } else {
        digits
    };
    // Korean numbers: a leading 0, then 8 to 10 digits (02-123-4567 … 010-1234-5678).
    let ok = domestic.starts_with('0') && (9..=11).contains(&domestic.len()) && !domestic.starts_with("00");
    ok.then_some(domestic)
}

/// Checks a list of recipients (1 to `max`) and normalises each to its domestic digits, in
/// order, duplicates removed; an error names the first bad one (`to[i]`).
pub fn normalize_numbers(to: &mut Vec<String>, max: usize) -> Result<(), ContractError> {
    if to.is_empty() {
        return Err(ContractError::field("to", "must list at least one phone number"));
    }
    if to.len() > max {
        return Err(ContractError::field("to", format!("must list at most {max} numbers")));
    }
    let mut normalized = Vec::with_capacity(to.len());
    for (i, raw) in to.iter().enumerate() {
        let number = normalize_korean_number(raw).ok_or_else(|| {
            ContractError::field(
                format!("to[{i}]"),
                "is not a Korean phone number (use 01012345678, 010-1234-5678 or +82 10-1234-5678)",
            )
        })?;
        if !normalized.contains(&number) {
            normalized.push(number);
        }
    }
    *to = normalized;
    Ok(())
}

/// The length of `s` in EUC-KR bytes, or an error naming the first character SENS cannot send.
///
/// SENS documents EUC-KR. encoding_rs's `EUC_KR` is the WHATWG superset (windows-949), which also
/// encodes 8,822 extra Hangul syllables outside KS X 1001; whether SENS accepts those is
/// UNVERIFIED, so we accept only what strict EUC-KR (both bytes 0xA1..=0xFE) can carry.
pub fn euc_kr_len(field: &str, s: &str) -> Result<usize, ContractError> {
    let mut total = 0;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if c.is_ascii() {
            total += 1;
            continue;
        }
        let (bytes, _, had_errors) = encoding_rs::EUC_KR.encode(c.encode_utf8(&mut buf));
        let strict = bytes.len() == 2 && bytes.iter().all(|b| (0xA1..=0xFE).contains(b));
        if had_errors || !strict {
            return Err(ContractError::field(
                field,
                format!(
                    "contains {c:?} (U+{:04X}), which SMS cannot carry: SENS sends EUC-KR, without emoji",
                    c as u32
                ),
            ));
        }
        total += 2;
    }
    Ok(total)
}

/// A text field of at most `max` EUC-KR bytes.
pub fn check_euc_kr(field: &str, s: &str, max: usize, what: &str) -> Result<(), ContractError> {
    let bytes = euc_kr_len(field, s)?;
    if bytes > max {
        return Err(ContractError::field(
            field,
            format!("must be at most {max} EUC-KR bytes{what}; got {bytes}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_numbers_normalize() {
        assert_eq!(normalize_korean_number("010-1234-5678").as_deref(), Some("01012345678"));
        assert_eq!(
            normalize_korean_number("+82 10-1234-5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(
            normalize_korean_number("+82 010 1234 5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(normalize_korean_number("02-123-4567").as_deref(), Some("021234567"));
        assert_eq!(normalize_korean_number("+1 555 123 4567"), None);
        assert_eq!(normalize_korean_number("010-1234-567a"), None);
        assert_eq!(normalize_korean_number("12345"), None);
    }

    #[test]
    fn euc_kr_lengths() {
        assert_eq!(euc_kr_len("c", "abc 가나다").unwrap(), 10);
        let e = euc_kr_len("content", "배송 🚚").unwrap_err();
        assert_eq!(e.field_name(), Some("content"));
        assert!(e.to_string().contains("U+1F69A"), "{e}");
        // 똠 is in windows-949 but not in KS X 1001.
        assert!(euc_kr_len("content", "똠").is_err());
    }
}
