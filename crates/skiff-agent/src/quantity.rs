//! Kubernetes resource quantities (`128Mi`, `0.5`, `250m`, `1e3`) as the numbers the engine
//! takes: bytes and thousandths of a CPU.

/// A quantity in its base unit times 1000 (so `250m` CPU is 250, `1Ki` is 1_024_000); None
/// when it does not parse.
fn milli(q: &str) -> Option<u128> {
    let q = q.trim();
    let (number, scale): (&str, u128) = if let Some(n) = q.strip_suffix("Ki") {
        (n, 1 << 10)
    } else if let Some(n) = q.strip_suffix("Mi") {
        (n, 1 << 20)
    } else if let Some(n) = q.strip_suffix("Gi") {
        (n, 1 << 30)
    } else if let Some(n) = q.strip_suffix("Ti") {
        (n, 1 << 40)
    } else if let Some(n) = q.strip_suffix("Pi") {
        (n, 1 << 50)
    } else if let Some(n) = q.strip_suffix("Ei") {
        (n, 1 << 60)
    } else if let Some(n) = q.strip_suffix('m') {
        return decimal_milli(n, 0).map(|v| v / 1000);
    } else if let Some(n) = q.strip_suffix('k') {
        return decimal_milli(n, 3);
    } else if let Some(n) = q.strip_suffix('M') {
        return decimal_milli(n, 6);
    } else if let Some(n) = q.strip_suffix('G') {
        return decimal_milli(n, 9);
    } else if let Some(n) = q.strip_suffix('T') {
        return decimal_milli(n, 12);
    } else if let Some(n) = q.strip_suffix('P') {
        return decimal_milli(n, 15);
    } else if let Some(n) = q.strip_suffix('E') {
        return decimal_milli(n, 18);
    } else if let Some((n, e)) = q.split_once(['e', 'E']) {
        return decimal_milli(n, e.parse().ok()?);
    } else {
        return decimal_milli(q, 0);
    };
    decimal_milli(number, 0).map(|v| v * scale)
}

/// `number × 10^exp × 1000`, for a plain decimal number (rounded up, as Kubernetes rounds).
fn decimal_milli(number: &str, exp: i32) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    let mut value: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let shift = exp + 3 - frac.len() as i32;
    if shift >= 0 {
        value = value.checked_mul(10u128.checked_pow(shift as u32)?)?;
    } else {
        let div = 10u128.checked_pow((-shift) as u32)?;
        value = value.div_ceil(div);
    }
    Some(value)
}

/// Bytes of a memory quantity.
pub fn bytes(q: &str) -> Option<i64> {
    milli(q)
        .map(|m| m.div_ceil(1000))
        .and_then(|b| i64::try_from(b).ok())
}

/// Thousandths of a CPU of a CPU quantity.
pub fn millicpu(q: &str) -> Option<i64> {
    milli(q).and_then(|m| i64::try_from(m).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(millicpu("250m"), Some(250));
        assert_eq!(millicpu("0.5"), Some(500));
        assert_eq!(millicpu("2"), Some(2000));
        assert_eq!(millicpu(".1"), Some(100));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("-1"), None);
        assert_eq!(millicpu(""), None);
    }
}
