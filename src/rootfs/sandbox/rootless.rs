//! Rootless sandboxes: which ids a user namespace maps, and how the maps get written.
//!
//! Without root, the helper first creates a user namespace. Two ways to fill it:
//! - the user has subordinate ids in `/etc/subuid` and `/etc/subgid` and the setuid helpers
//!   `newuidmap`/`newgidmap` exist: gantry maps 0 to its own ids and 1..=count to the
//!   subordinate range, so USER values such as `app` (1000) work. The helper stops itself
//!   (`SIGSTOP`) right after `unshare`, gantry runs the two tools on its pid and continues it;
//!   the tools check that their caller owns the target, which is why gantry, not the helper's
//!   children, runs them.
//! - otherwise the helper writes a single-id map itself (`0 <uid> 1`), which is all the kernel
//!   allows an unprivileged process; only root (0:0) can then be used inside.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::SandboxError;

pub const SUBUID: &str = "/etc/subuid";
pub const SUBGID: &str = "/etc/subgid";

/// The ids gantry runs as (mapped to 0 inside), and the subordinate ids mapped after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub subordinate: Option<Subordinate>,
}

/// Subordinate ranges from `/etc/subuid` and `/etc/subgid`, mapped to 1..=count inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subordinate {
    pub uid_start: u32,
    pub uid_count: u32,
    pub gid_start: u32,
    pub gid_count: u32,
}

impl IdMap {
    /// The map for the current process: subordinate ranges when the user has both and the
    /// mapping tools exist, a single id otherwise.
    pub fn current() -> IdMap {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let name = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|t| user_name(&t, uid));
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let tools = map_tool("newuidmap").is_some() && map_tool("newgidmap").is_some();
        let subordinate = match (
            tools,
            subordinate_range(&read(SUBUID), name.as_deref(), uid),
            subordinate_range(&read(SUBGID), name.as_deref(), uid),
        ) {
            (true, Some((uid_start, uid_count)), Some((gid_start, gid_count))) => {
                Some(Subordinate {
                    uid_start,
                    uid_count,
                    gid_start,
                    gid_count,
                })
            }
            _ => None,
        };
        IdMap {
            uid,
            gid,
            subordinate,
        }
    }

    /// Whether `uid` and every one of `gids` exist inside the namespace.
    pub fn covers(&self, uid: u32, gids: &[u32]) -> bool {
        let (uids, groups) = match self.subordinate {
            Some(s) => (s.uid_count, s.gid_count),
            None => (0, 0),
        };
        uid <= uids && gids.iter().all(|g| *g <= groups)
    }

    /// The ids a file owned by host ids `uid`/`gid` has inside the namespace, which are the ids
    /// the image records: gantry's own ids are 0, the subordinate range is 1..=count. `None` for
    /// an id the namespace does not map (it shows up there as the overflow id, 65534).
    pub fn to_image(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        let inside = |id: u32, own: u32, start: u32, count: u32| {
            if id == own {
                Some(0)
            } else if id >= start && id - start < count {
                Some(id - start + 1)
            } else {
                None
            }
        };
        let (us, uc, gs, gc) = match self.subordinate {
            Some(s) => (s.uid_start, s.uid_count, s.gid_start, s.gid_count),
            None => (0, 0, 0, 0),
        };
        Some((
            inside(uid, self.uid, us, uc)?,
            inside(gid, self.gid, gs, gc)?,
        ))
    }

    /// `newuidmap`/`newgidmap` arguments after the pid, for uids (`true`) or gids.
    pub fn tool_args(&self, uids: bool) -> Vec<String> {
        let (own, start, count) = match (self.subordinate, uids) {
            (Some(s), true) => (self.uid, s.uid_start, s.uid_count),
            (Some(s), false) => (self.gid, s.gid_start, s.gid_count),
            (None, true) => (self.uid, 0, 0),
            (None, false) => (self.gid, 0, 0),
        };
        let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
        if count > 0 {
            args.extend(["1".to_string(), start.to_string(), count.to_string()]);
        }
        args
    }
}

/// The login name of `uid` in a passwd text.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    })
}

/// The first `name:start:count` (or `uid:start:count`) range of a subuid/subgid text.
pub fn subordinate_range(text: &str, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        let [who, start, count] = f.as_slice() else {
            return None;
        };
        if Some(*who) != name && *who != uid {
            return None;
        }
        let count: u32 = count.parse().ok().filter(|c| *c > 0)?;
        Some((start.parse().ok()?, count))
    })
}

/// Where `newuidmap` or `newgidmap` lives, if anywhere on PATH or in `/usr/bin`.
pub fn map_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Writes the maps of process `pid` with `newuidmap` and `newgidmap`.
pub fn write_maps(pid: u32, map: &IdMap) -> Result<(), SandboxError> {
    for (tool, uids) in [("newuidmap", true), ("newgidmap", false)] {
        let exe = map_tool(tool).ok_or_else(|| SandboxError::MapTool {
            tool: tool.into(),
            detail: "not found on PATH".into(),
        })?;
        let out = Command::new(&exe)
            .arg(pid.to_string())
            .args(map.tool_args(uids))
            .output()
            .map_err(|e| SandboxError::MapTool {
                tool: tool.into(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(SandboxError::MapTool {
                tool: tool.into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbad line\nbob:1:0\n";
        assert_eq!(
            subordinate_range(text, Some("alice"), 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            subordinate_range(text, Some("carol"), 1001),
            Some((200000, 1000))
        );
        assert_eq!(subordinate_range(text, Some("bob"), 7), None);
        assert_eq!(subordinate_range(text, None, 5), None);
    }

    #[test]
    fn maps_and_coverage() {
        let single = IdMap {
            uid: 1000,
            gid: 100,
            subordinate: None,
        };
        assert_eq!(single.tool_args(true), ["0", "1000", "1"]);
        assert!(single.covers(0, &[0]));
        assert!(!single.covers(1000, &[0]));
        let full = IdMap {
            subordinate: Some(Subordinate {
                uid_start: 100000,
                uid_count: 65536,
                gid_start: 200000,
                gid_count: 1000,
            }),
            ..single
        };
        assert_eq!(
            full.tool_args(true),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
        assert_eq!(
            full.tool_args(false),
            ["0", "100", "1", "1", "200000", "1000"]
        );
        assert!(full.covers(1000, &[1000, 44]));
        assert!(!full.covers(1000, &[1001]));
    }

    #[test]
    fn host_owners_map_back_to_image_ids() {
        let single = IdMap {
            uid: 1000,
            gid: 100,
            subordinate: None,
        };
        assert_eq!(single.to_image(1000, 100), Some((0, 0)));
        // Only gantry's own ids exist inside a single-id namespace.
        assert_eq!(single.to_image(0, 0), None);
        assert_eq!(single.to_image(1000, 0), None);
        let full = IdMap {
            subordinate: Some(Subordinate {
                uid_start: 100000,
                uid_count: 65536,
                gid_start: 200000,
                gid_count: 1000,
            }),
            ..single
        };
        // USER app (1000:1000 inside) writes files owned by 100999:200999 on the host.
        assert_eq!(full.to_image(100999, 200999), Some((1000, 1000)));
        assert_eq!(full.to_image(100000, 200000), Some((1, 1)));
        assert_eq!(full.to_image(1000, 100), Some((0, 0)));
        assert_eq!(full.to_image(165535, 200999), Some((65536, 1000)));
        assert_eq!(full.to_image(165536, 200000), None);
        assert_eq!(full.to_image(100000, 201000), None);
        assert_eq!(full.to_image(99999, 100), None);
    }

    #[test]
    fn user_names_from_passwd() {
        let text = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(user_name(text, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(text, 5), None);
    }
}
