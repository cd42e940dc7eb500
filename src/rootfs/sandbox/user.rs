//! USER resolution the way Docker (runc's `GetExecUser`) does it: `name|uid[:group|gid]` looked up
//! in the image's `/etc/passwd` and `/etc/group`, never the host's.
//!
//! Rules pinned here: a numeric uid need not exist in passwd (it then runs with gid 0 and home
//! `/`); a name must exist; an explicit group replaces the primary group and turns supplementary
//! groups off; without one, every group that lists the user by name is added. No USER at all means
//! `0`, so root also gets the groups it is a member of, as in `docker run`.

use serde::{Deserialize, Serialize};

/// Where the image's account databases live, for messages.
pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// A USER value resolved to ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// All groups the process gets (`setgroups`): the primary group first, then the supplementary
    /// groups in ascending order, without duplicates.
    pub groups: Vec<u32>,
    /// The home directory from passwd, or `/` when the user is not listed.
    pub home: String,
}

/// Why a USER value could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error(
        "USER `{user}`: no such user in `{file}` of the image\n\
         hint: create the user in an earlier RUN (e.g. `adduser`), or use a numeric uid"
    )]
    UnknownUser { user: String, file: String },
    #[error(
        "USER `{user}`: no group `{group}` in `{file}` of the image\n\
         hint: create the group in an earlier RUN (e.g. `addgroup`), or use a numeric gid"
    )]
    UnknownGroup {
        user: String,
        group: String,
        file: String,
    },
    #[error(
        "USER `{user}` is not valid: {reason}\n\
         hint: write USER as `name`, `uid`, `name:group` or `uid:gid`"
    )]
    Invalid { user: String, reason: String },
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines of an account file split on `:`, skipping comments, blank and malformed lines (as libc
/// does: one bad line does not make the whole file unusable).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

fn passwd_entries(text: &str) -> Vec<PasswdEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?,
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).copied().unwrap_or(""),
            })
        })
        .collect()
}

fn group_entries(text: &str) -> Vec<GroupEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?,
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_id(s: &str) -> Option<Result<u32, String>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u32>()
            .map_err(|_| format!("`{s}` is out of range for an id")),
    )
}

/// Resolves a raw USER value (`None`: no USER instruction, i.e. root) against the image's
/// passwd and group text (`None` when the file does not exist).
pub fn resolve(
    user: Option<&str>,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let raw = user.map(str::trim).filter(|u| !u.is_empty()).unwrap_or("0");
    let (user_part, group_part) = match raw.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (raw, None),
    };
    let invalid = |reason: String| UserError::Invalid {
        user: raw.to_string(),
        reason,
    };
    if user_part.is_empty() {
        return Err(invalid("the user part is empty".into()));
    }
    if group_part == Some("") {
        return Err(invalid("the group after `:` is empty".into()));
    }
    let users = passwd.map(passwd_entries).unwrap_or_default();
    let groups = group.map(group_entries).unwrap_or_default();

    let (name, uid, mut gid, home) = match parse_id(user_part) {
        Some(id) => {
            let id = id.map_err(invalid)?;
            match users.iter().find(|e| e.uid == id) {
                Some(e) => (Some(e.name), e.uid, e.gid, e.home),
                None => (None, id, 0, "/"),
            }
        }
        None => match users.iter().find(|e| e.name == user_part) {
            Some(e) => (Some(e.name), e.uid, e.gid, e.home),
            None => {
                return Err(UserError::UnknownUser {
                    user: user_part.to_string(),
                    file: PASSWD.into(),
                })
            }
        },
    };

    let mut supplementary = Vec::new();
    match group_part {
        Some(g) => {
            gid = match parse_id(g) {
                Some(id) => id.map_err(invalid)?,
                None => match groups.iter().find(|e| e.name == g) {
                    Some(e) => e.gid,
                    None => {
                        return Err(UserError::UnknownGroup {
                            user: raw.to_string(),
                            group: g.to_string(),
                            file: GROUP.into(),
                        })
                    }
                },
            };
        }
        None => {
            if let Some(name) = name {
                supplementary = groups
                    .iter()
                    .filter(|e| e.members.contains(&name))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    supplementary.sort_unstable();
    supplementary.dedup();
    supplementary.retain(|g| *g != gid);
    let mut all = vec![gid];
    all.extend(supplementary);
    Ok(ResolvedUser {
        uid,
        gid,
        groups: all,
        home: if home.is_empty() { "/" } else { home }.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
";
    const GROUP_TEXT: &str = "\
root:x:0:
bin:x:1:root,daemon
wheel:x:10:root
app:x:1000:
docker:x:999:app, other
video:x:44:app
";

    fn r(user: Option<&str>) -> Result<ResolvedUser, UserError> {
        resolve(user, Some(PASSWD_TEXT), Some(GROUP_TEXT))
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        assert_eq!(
            r(Some("app")).unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 44, 999],
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn no_user_is_root_with_its_groups() {
        let u = r(None).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (0, 0, vec![0, 1, 10]));
        assert_eq!(u.home, "/root");
        assert_eq!(r(Some("  ")).unwrap().uid, 0);
    }

    #[test]
    fn numeric_uid_found_and_not_found() {
        let u = r(Some("1000")).unwrap();
        assert_eq!((u.uid, u.gid, u.groups.len()), (1000, 1000, 3));
        let u = r(Some("4242")).unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 4242,
                gid: 0,
                groups: vec![0],
                home: "/".into()
            }
        );
        // No passwd at all: numeric ids still work.
        let u = resolve(Some("7:8"), None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (7, 8, vec![8]));
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let u = r(Some("app:video")).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 44, vec![44]));
        let u = r(Some("app:5")).unwrap();
        assert_eq!((u.gid, u.groups), (5, vec![5]));
    }

    #[test]
    fn empty_home_is_root_dir() {
        assert_eq!(r(Some("nohome")).unwrap().home, "/");
    }

    #[test]
    fn unknown_user_and_group_name_the_file() {
        let e = r(Some("ghost")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "USER `ghost`: no such user in `/etc/passwd` of the image\n\
             hint: create the user in an earlier RUN (e.g. `adduser`), or use a numeric uid"
        );
        let e = resolve(Some("app"), None, None).unwrap_err();
        assert!(matches!(e, UserError::UnknownUser { ref user, .. } if user == "app"));
        let e = r(Some("app:ghosts")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("USER `app:ghosts`: no group `ghosts` in `/etc/group` of the image"));
    }

    #[test]
    fn invalid_values() {
        for bad in [":1", "app:", "99999999999"] {
            let e = r(Some(bad)).unwrap_err();
            assert!(matches!(e, UserError::Invalid { .. }), "{bad}: {e}");
        }
        assert!(r(Some("99999999999"))
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }
}
