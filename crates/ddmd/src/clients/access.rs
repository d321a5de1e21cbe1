//! Who may do what: peer credentials to roles. (What each role may call
//! is in the request table, `requests`.)
//!
//! The socket is world-writable on purpose (as the system D-Bus socket is):
//! the decision is made here, from the peer's kernel-attested credentials
//! (SO_PEERCRED, SO_PEERGROUPS), never from file modes.

use crate::core::peer::Credentials;
use ddm_proto::message::Role;
use nix::unistd::{Gid, Group, Uid, User};
use serde::Deserialize;

/// Who gets which role. Users and groups are names or numeric ids. Root and
/// the user the service runs as are always admin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    pub admin_users: Vec<String>,
    pub admin_groups: Vec<String>,
    pub monitor_users: Vec<String>,
    pub monitor_groups: Vec<String>,
    /// The role of everyone else: "status" or "none".
    pub default_role: String,
    /// Remote clients, by their certificate's identity (SAN URI, else
    /// subject CN); an entry ending in `*` is a prefix. Others get none.
    pub admin_identities: Vec<String>,
    pub monitor_identities: Vec<String>,
    pub status_identities: Vec<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            admin_users: Vec::new(),
            admin_groups: vec!["ddm-admin".into()],
            monitor_users: Vec::new(),
            monitor_groups: vec!["ddm".into()],
            default_role: "status".into(),
            admin_identities: Vec::new(),
            monitor_identities: Vec::new(),
            status_identities: Vec::new(),
        }
    }
}

impl AccessConfig {
    /// The default role is one a stranger may have.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.default_role.as_str(), "status" | "none") {
            return Err(format!(
                "access.default_role must be \"status\" or \"none\", not {:?}",
                self.default_role
            ));
        }
        Ok(())
    }
}

/// The role policy, with names already resolved to ids.
#[derive(Debug, Clone)]
pub struct Policy {
    service_uid: u32,
    admin_uids: Vec<u32>,
    admin_gids: Vec<u32>,
    monitor_uids: Vec<u32>,
    monitor_gids: Vec<u32>,
    default_role: Role,
    /// Remote identities (or prefixes, ending in `*`) and their roles, the
    /// highest first.
    identities: Vec<(String, Role)>,
}

impl Policy {
    /// Resolves user and group names; unknown names are logged and match
    /// no one, so a missing `ddm` group simply grants nothing.
    pub fn resolve(config: &AccessConfig) -> Policy {
        Policy {
            service_uid: Uid::effective().as_raw(),
            admin_uids: resolve_all(&config.admin_users, user_id),
            admin_gids: resolve_all(&config.admin_groups, group_id),
            monitor_uids: resolve_all(&config.monitor_users, user_id),
            monitor_gids: resolve_all(&config.monitor_groups, group_id),
            default_role: if config.default_role == "none" {
                Role::None
            } else {
                Role::Status
            },
            identities: [
                (&config.admin_identities, Role::Admin),
                (&config.monitor_identities, Role::Monitor),
                (&config.status_identities, Role::Status),
            ]
            .into_iter()
            .flat_map(|(names, role)| names.iter().map(move |n| (n.clone(), role)))
            .collect(),
        }
    }

    /// The role of a remote peer with certificate identity `identity`: the
    /// highest any entry gives it; none when no entry names it.
    pub fn role_of_identity(&self, identity: &str) -> Role {
        self.identities
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => identity.starts_with(prefix),
                None => identity == pattern,
            })
            .map_or(Role::None, |(_, role)| *role)
    }

    /// The role of a peer.
    pub fn role_of(&self, peer: &Credentials) -> Role {
        let in_any = |gids: &[u32]| {
            std::iter::once(&peer.gid)
                .chain(&peer.groups)
                .any(|g| gids.contains(g))
        };
        if peer.uid == 0
            || peer.uid == self.service_uid
            || self.admin_uids.contains(&peer.uid)
            || in_any(&self.admin_gids)
        {
            Role::Admin
        } else if self.monitor_uids.contains(&peer.uid) || in_any(&self.monitor_gids) {
            Role::Monitor
        } else {
            self.default_role
        }
    }
}

fn resolve_all(names: &[String], lookup: fn(&str) -> Option<u32>) -> Vec<u32> {
    names
        .iter()
        .filter_map(|name| {
            let id = name.parse().ok().or_else(|| lookup(name));
            if id.is_none() {
                tracing::warn!(
                    name,
                    "access policy names an unknown user or group; it matches no one"
                );
            }
            id
        })
        .collect()
}

fn user_id(name: &str) -> Option<u32> {
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

fn group_id(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| Gid::as_raw(g.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            service_uid: 4242,
            admin_uids: vec![1000],
            admin_gids: vec![50],
            monitor_uids: vec![1001],
            monitor_gids: vec![60],
            default_role: Role::Status,
            identities: vec![
                ("spiffe://example.org/ops/alice".into(), Role::Admin),
                ("spiffe://example.org/noc/*".into(), Role::Monitor),
                ("CN=dashboard".into(), Role::Status),
                ("dashboard".into(), Role::Status),
            ],
        }
    }

    #[test]
    fn remote_identities_get_roles_by_name_or_prefix_and_others_none() {
        let p = policy();
        assert_eq!(
            p.role_of_identity("spiffe://example.org/ops/alice"),
            Role::Admin
        );
        assert_eq!(
            p.role_of_identity("spiffe://example.org/ops/alicex"),
            Role::None
        );
        assert_eq!(
            p.role_of_identity("spiffe://example.org/noc/bob"),
            Role::Monitor
        );
        assert_eq!(p.role_of_identity("dashboard"), Role::Status);
        assert_eq!(p.role_of_identity("mallory"), Role::None);
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn roles_follow_the_policy() {
        let p = policy();
        assert_eq!(p.role_of(&peer(0, 0, &[])), Role::Admin);
        assert_eq!(p.role_of(&peer(4242, 9, &[])), Role::Admin);
        assert_eq!(p.role_of(&peer(1000, 9, &[])), Role::Admin);
        assert_eq!(p.role_of(&peer(7, 9, &[3, 50])), Role::Admin);
        assert_eq!(p.role_of(&peer(1001, 9, &[])), Role::Monitor);
        assert_eq!(p.role_of(&peer(7, 60, &[])), Role::Monitor);
        assert_eq!(p.role_of(&peer(7, 9, &[3])), Role::Status);
        let closed = Policy {
            default_role: Role::None,
            ..p
        };
        assert_eq!(closed.role_of(&peer(7, 9, &[])), Role::None);
    }

    #[test]
    fn names_and_numbers_resolve() {
        let config = AccessConfig {
            admin_users: vec!["root".into(), "12345".into(), "no-such-user-ddm".into()],
            ..AccessConfig::default()
        };
        assert_eq!(Policy::resolve(&config).admin_uids, vec![0, 12345]);
    }
}
