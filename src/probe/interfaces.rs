use serde_json::Value;

/// /proc/net/dev lists the interfaces of the reader's network namespace.
pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect()
}

pub fn take() -> Result<Value, String> {
    let names = parse(&super::read("/proc/self/net/dev")?);
    Ok(Value::Array(names.into_iter().map(Value::String).collect()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_proc_net_dev() {
        let t =
            "Inter-|   Receive\n face |bytes\n    lo:       0       0\n  eth0: 1 2\nveth-a@x: 0\n";
        assert_eq!(super::parse(t), vec!["lo", "eth0", "veth-a@x"]);
    }
}
