//! Which scenarios a run takes: `--filter` (names by glob, `tag:` by tag)
//! and `--shard K/N` (a stable partition by name, so CI runners agree).

use super::Listed;

/// The scenarios that match any filter (all when there is none) and fall
/// in shard K of N, in their original order.
pub fn select(list: Vec<Listed>, filters: &[String], shard: Option<(u64, u64)>) -> Vec<Listed> {
    list.into_iter()
        .filter(|s| selected(&s.name, &s.tags, filters))
        .filter(|s| shard.is_none_or(|(k, n)| shard_of(&s.name, n) == k))
        .collect()
}

fn selected(name: &str, tags: &[String], filters: &[String]) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_prefix("tag:") {
            Some(tag) => tags.iter().any(|t| t == tag),
            None => glob_match(f, name),
        })
}

/// Shell-style glob with `*` and `?`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &name.chars().collect::<Vec<_>>(),
    )
}

/// The shard (1 to n) a scenario falls in. FNV-1a: stable across runs,
/// machines and Rust versions, unlike the standard library's hasher.
pub fn shard_of(name: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, tags: &[&str]) -> Listed {
        Listed {
            file: format!("{name}.yaml").into(),
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            has_limits: false,
        }
    }

    #[test]
    fn shards_are_stable_and_even() {
        // Fixed values: a change here moves scenarios between CI runners
        // and splits a course's suite differently from last term's.
        let fixed: Vec<u64> = [
            "netns-firewall",
            "pid-namespace",
            "uts-hostname",
            "container",
        ]
        .iter()
        .map(|n| shard_of(n, 4))
        .collect();
        assert_eq!(fixed, [3, 1, 2, 1]);
        let counts = (0..1000).fold([0u32; 4], |mut c, i| {
            c[(shard_of(&format!("s-{i}"), 4) - 1) as usize] += 1;
            c
        });
        assert!(
            counts.iter().all(|&c| (200..300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn every_scenario_falls_in_exactly_one_shard() {
        let all: Vec<Listed> = (0..50).map(|i| listed(&format!("s-{i}"), &[])).collect();
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| select(all.clone(), &[], Some((k, 3))))
            .map(|s| s.name)
            .collect();
        seen.sort();
        let mut names: Vec<String> = all.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(seen, names);
    }

    #[test]
    fn filters_by_glob_or_tag_keep_the_order() {
        let all = vec![
            listed("netns-firewall", &["net"]),
            listed("pid-namespace", &["pid"]),
            listed("uts-hostname", &[]),
        ];
        let names = |v: Vec<Listed>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(select(all.clone(), &[], None)).len(), 3);
        assert_eq!(
            names(select(
                all.clone(),
                &["uts*".into(), "tag:net".into()],
                None
            )),
            ["netns-firewall", "uts-hostname"]
        );
        assert!(select(all, &["tag:nope".into()], None).is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("net*", "netns-firewall"));
        assert!(glob_match("*-host?", "uts-hosts"));
        assert!(!glob_match("pid", "pid-1"));
        assert!(glob_match("*", ""));
    }
}
