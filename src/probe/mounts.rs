use serde_json::Value;

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .collect()
}

pub fn take() -> Result<Value, String> {
    let points = parse(&super::read("/proc/self/mountinfo")?);
    Ok(Value::Array(
        points.into_iter().map(Value::String).collect(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_mountinfo() {
        let t = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n30 22 0:5 / /mnt/my\\040dir rw - tmpfs t rw\n";
        assert_eq!(super::parse(t), vec!["/proc", "/mnt/my dir"]);
    }
}
