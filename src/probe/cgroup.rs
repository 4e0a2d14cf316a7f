use serde_json::Value;

/// The path in the hierarchy nslab uses for `limits`: the v1 `pids`
/// controller where one is mounted (hybrid machines), else the unified one.
pub fn parse(text: &str) -> Option<String> {
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "pids") {
            return Some(path.to_owned());
        }
        if controllers.is_empty() {
            unified = Some(path.to_owned());
        }
    }
    unified
}

pub fn take() -> Result<Value, String> {
    parse(&super::read("/proc/self/cgroup")?)
        .map(Value::String)
        .ok_or_else(|| "no pids or unified hierarchy in /proc/self/cgroup".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefers_v1_pids_then_unified() {
        assert_eq!(
            super::parse("8:pids:/a/b\n0::/c\n").as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            super::parse("0::/user.slice\n").as_deref(),
            Some("/user.slice")
        );
        assert_eq!(super::parse("4:memory:/x\n"), None);
    }
}
