use crate::ns::Ns;
use serde_json::{Map, Value, json};

fn inode(ns: Ns) -> Result<u64, String> {
    let path = format!("/proc/self/ns/{}", ns.proc_name());
    nix::sys::stat::stat(path.as_str())
        .map(|st| st.st_ino)
        .map_err(|e| format!("{path}: {e}"))
}

pub fn take_all() -> Result<Value, String> {
    let mut m = Map::new();
    for ns in Ns::ALL {
        // A kernel without time namespaces has no such file; leave it out
        // rather than fail every other namespace.
        if let Ok(i) = inode(ns) {
            m.insert(ns.word().to_owned(), json!(i));
        }
    }
    Ok(Value::Object(m))
}

pub fn take_one(ns: Ns) -> Result<Value, String> {
    inode(ns).map(|i| json!(i))
}
