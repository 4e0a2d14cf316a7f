use serde_json::{Value, json};

pub fn parse(text: &str) -> Result<Value, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let n: Vec<u64> = l
                .split_whitespace()
                .map(|x| {
                    x.parse::<u64>()
                        .map_err(|_| format!("bad id map line {l:?}"))
                })
                .collect::<Result<_, _>>()?;
            match n.as_slice() {
                [i, o, c] => Ok(json!({"inside": i, "outside": o, "count": c})),
                _ => Err(format!("bad id map line {l:?}")),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

pub fn take(path: &str) -> Result<Value, String> {
    parse(&super::read(path)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_kernel_format() {
        let v = super::parse("         0     100000      65536\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"inside": 0, "outside": 100000, "count": 65536}])
        );
        assert!(super::parse("0 1\n").is_err());
    }
}
