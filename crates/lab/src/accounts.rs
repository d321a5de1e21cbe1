//! Users and groups made for a test, removed when it ends: the access
//! tests run clients as them, the console test logs them in to Cockpit.

use crate::tools::{fed, run, tool};

#[derive(Default)]
pub struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    pub fn new() -> Accounts {
        Accounts::default()
    }

    pub fn group(&mut self, name: &str) {
        run("groupadd", &[name]);
        self.groups.push(name.into());
    }

    /// A user with its own group, and supplementary `groups`, who cannot
    /// log in.
    pub fn user(&mut self, name: &str, groups: &[&str]) {
        self.add(name, groups, "/usr/sbin/nologin");
    }

    /// A user who logs in with `password` (Cockpit runs its bridge through
    /// the login shell).
    pub fn person(&mut self, name: &str, groups: &[&str], password: &str) {
        self.add(name, groups, "/bin/sh");
        fed(&mut tool("chpasswd"), &format!("{name}:{password}\n"));
    }

    fn add(&mut self, name: &str, groups: &[&str], shell: &str) {
        let mut args = vec!["--no-create-home", "--shell", shell, "--user-group"];
        let list = groups.join(",");
        if !groups.is_empty() {
            args.extend(["--groups", &list]);
        }
        args.push(name);
        run("useradd", &args);
        self.users.push(name.into());
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = tool("userdel").arg(user).status();
        }
        for group in &self.groups {
            let _ = tool("groupdel").arg(group).status();
        }
    }
}
