use serde_json::{Value, json};

/// Each /proc/sysvipc file has one header line, then one line per object.
pub fn count(text: &str) -> usize {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

pub fn take() -> Result<Value, String> {
    let n = |f: &str| super::read(&format!("/proc/sysvipc/{f}")).map(|t| count(&t));
    Ok(json!({
        "message_queues": n("msg")?,
        "shared_memory": n("shm")?,
        "semaphores": n("sem")?,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_objects_not_header() {
        assert_eq!(
            super::count("       key      msqid\n         0          0\n"),
            1
        );
        assert_eq!(super::count("       key      msqid\n"), 0);
    }
}
