//! Who is on the other end of the socket (SO_PEERCRED, checked by the kernel, not claimed by
//! the client) and what that peer may do.

use std::ffi::CString;
use std::io;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

use super::protocol::{ApiError, ErrorCode, Request};

/// A connected process's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// The gid and the supplementary groups of the uid's account (from the group database).
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let cred = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
        let (uid, gid) = (cred.uid(), cred.gid());
        Ok(Peer {
            pid: cred.pid(),
            uid,
            gid,
            groups: groups_of(uid, gid),
        })
    }
}

/// `gid` plus the groups the account of `uid` belongs to; just `gid` for an uid without one.
pub fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    let mut groups = vec![gid];
    if let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) {
        if let Ok(name) = CString::new(user.name) {
            if let Ok(list) = getgrouplist(&name, Gid::from_raw(gid)) {
                groups.extend(list.into_iter().map(Gid::as_raw));
            }
        }
    }
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The uid of a login name, if the account exists.
pub fn uid_of_login(login: &str) -> Option<u32> {
    User::from_name(login)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// The groups that grant rights, resolved once when the service starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    pub admin_name: String,
    pub admin: Option<u32>,
    pub reader_name: String,
    pub reader: Option<u32>,
}

impl Groups {
    pub fn resolve(admin: &str, reader: &str) -> Groups {
        let gid = |name: &str| {
            Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        };
        Groups {
            admin_name: admin.to_string(),
            admin: gid(admin),
            reader_name: reader.to_string(),
            reader: gid(reader),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Root or the admin group: every op.
    Admin,
    /// The reader group: status, list, identify, decisions, verify_user.
    Reader,
    /// Anyone else who can reach the socket: status, and verify_user for their own login.
    Other,
}

pub fn role(peer: &Peer, groups: &Groups) -> Role {
    let member = |g: Option<u32>| g.is_some_and(|g| peer.groups.contains(&g));
    if peer.uid == 0 || member(groups.admin) {
        Role::Admin
    } else if member(groups.reader) {
        Role::Reader
    } else {
        Role::Other
    }
}

/// Whether `peer` may make `request`; `uid_of` maps a login name to its uid.
pub fn authorise(
    peer: &Peer,
    groups: &Groups,
    request: &Request,
    uid_of: impl Fn(&str) -> Option<u32>,
) -> Result<Role, ApiError> {
    let role = role(peer, groups);
    let allowed = match (role, request) {
        (Role::Admin, _) => true,
        (_, Request::Status {}) => true,
        (Role::Reader, r) => !r.changes_gallery(),
        (Role::Other, Request::VerifyUser(v)) => uid_of(&v.user) == Some(peer.uid),
        (Role::Other, _) => false,
    };
    if allowed {
        return Ok(role);
    }
    let needs = if request.changes_gallery() {
        format!("root or group {}", groups.admin_name)
    } else if let Request::VerifyUser(_) = request {
        format!(
            "to be that user, or group {} or {}",
            groups.reader_name, groups.admin_name
        )
    } else {
        format!("group {} or {}", groups.reader_name, groups.admin_name)
    };
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "op {} needs {needs}; you are uid {} (groups {:?})",
            request.op(),
            peer.uid,
            peer.groups
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::protocol::decode_request;

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 1,
            uid,
            gid: groups[0],
            groups: groups.to_vec(),
        }
    }

    fn req(line: &str) -> Request {
        decode_request(line.as_bytes()).unwrap()
    }

    #[test]
    fn the_rules_of_the_contract() {
        let groups = Groups {
            admin_name: "facegate-admin".into(),
            admin: Some(900),
            reader_name: "facegate".into(),
            reader: Some(901),
        };
        let remove = req(r#"{"v":1,"op":"remove","person":"Ada"}"#);
        let list = req(r#"{"v":1,"op":"list"}"#);
        let status = req(r#"{"v":1,"op":"status"}"#);
        let identify = req(r#"{"v":1,"op":"identify","image":""}"#);
        let verify_ada = req(r#"{"v":1,"op":"verify_user","user":"ada"}"#);
        let uid_of = |login: &str| (login == "ada").then_some(1000);
        let ok = |p: &Peer, r: &Request| authorise(p, &groups, r, uid_of).is_ok();

        let root = peer(0, &[0]);
        let admin = peer(1001, &[1001, 900]);
        let reader = peer(1002, &[1002, 901]);
        let ada = peer(1000, &[1000]);
        let bob = peer(1003, &[1003]);
        for r in [&remove, &list, &status, &identify, &verify_ada] {
            assert!(ok(&root, r) && ok(&admin, r), "{r:?}");
        }
        assert!(!ok(&reader, &remove));
        for r in [&list, &status, &identify, &verify_ada] {
            assert!(ok(&reader, r), "{r:?}");
        }
        assert!(ok(&ada, &verify_ada) && ok(&ada, &status));
        for r in [&remove, &list, &identify] {
            assert!(!ok(&ada, r), "{r:?}");
        }
        assert!(!ok(&bob, &verify_ada));
        let err = authorise(&reader, &groups, &remove, uid_of).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(err.message.contains("facegate-admin"), "{}", err.message);
        // A group that does not exist on this system grants nothing.
        let none = Groups {
            admin: None,
            reader: None,
            ..groups.clone()
        };
        assert_eq!(role(&peer(5, &[5]), &none), Role::Other);
        assert_eq!(role(&root, &none), Role::Admin);
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        assert_eq!(p.pid as u32, std::process::id());
        assert_eq!(p.uid, nix::unistd::getuid().as_raw());
        assert!(p.groups.contains(&p.gid));
    }
}
