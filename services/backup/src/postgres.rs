//! PostgreSQL as a backup source and restore target: `pg_dump --format=custom` streamed from its stdout,
//! `pg_restore` fed on its stdin. The password never appears on a command line: it goes in PGPASSWORD.

use std::io;
use std::process::{ChildStdin, Command};

use secrecy::{ExposeSecret, SecretString};

use crate::process;

/// A connection URL split so the password can travel in the environment instead of the process list.
struct Connection {
    url_without_password: String,
    password: Option<String>,
}

fn split(url: &SecretString) -> Connection {
    let url = url.expose_secret();
    let parsed = url.split_once("://").and_then(|(scheme, rest)| {
        let (userinfo, host) = rest.split_once('@')?;
        let (user, password) = userinfo.split_once(':')?;
        Some((format!("{scheme}://{user}@{host}"), password.to_owned()))
    });
    match parsed {
        Some((url_without_password, password)) => Connection {
            url_without_password,
            password: Some(password),
        },
        None => Connection {
            url_without_password: url.to_owned(),
            password: None,
        },
    }
}

fn command(program: &str, url: &SecretString) -> Command {
    let connection = split(url);
    let mut command = Command::new(program);
    command.arg(format!("--dbname={}", connection.url_without_password));
    if let Some(password) = connection.password {
        command.env("PGPASSWORD", password);
    }
    command
}

/// Starts `pg_dump --format=custom` of the database at `url`; its output is the stream.
pub fn dump(url: &SecretString) -> io::Result<process::Output> {
    let mut command = command("pg_dump", url);
    command.args(["--format=custom", "--no-owner"]);
    process::output("pg_dump", command)
}

/// Starts `pg_restore` into the (existing, empty) database at `url`; write a custom-format dump into the
/// returned stdin, drop it, then `finish` says whether it applied.
pub fn start_restore(url: &SecretString) -> io::Result<(process::Input, ChildStdin)> {
    let mut command = command("pg_restore", url);
    command.args(["--no-owner", "--exit-on-error"]);
    process::input("pg_restore", command)
}

/// The database a connection URL names (the last path segment).
pub fn database_name(url: &SecretString) -> Option<String> {
    let url = url.expose_secret();
    let path = url.split_once("://")?.1.split_once('/')?.1;
    let name = path.split(['?', '#']).next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// The same server and credentials with another database.
pub fn with_database(url: &SecretString, database: &str) -> SecretString {
    let url = url.expose_secret();
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.find('?').map_or("", |i| &path[i..]);
    SecretString::from(format!("{scheme}://{authority}/{database}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_swap_their_database_and_keep_the_rest() {
        let url =
            SecretString::from("postgres://app:pw@db.lab:5432/shop?sslmode=require".to_owned());
        assert_eq!(database_name(&url).as_deref(), Some("shop"));
        assert_eq!(
            with_database(&url, "shop_restored").expose_secret(),
            "postgres://app:pw@db.lab:5432/shop_restored?sslmode=require"
        );
        let bare = SecretString::from("postgres://postgres@127.0.0.1".to_owned());
        assert_eq!(database_name(&bare), None);
        assert_eq!(
            with_database(&bare, "postgres").expose_secret(),
            "postgres://postgres@127.0.0.1/postgres"
        );
    }

    #[test]
    fn passwords_leave_the_url_for_the_environment() {
        let c = split(&SecretString::from(
            "postgres://app:s3cr3t@db.lab:5432/shop?sslmode=require".to_owned(),
        ));
        assert_eq!(
            c.url_without_password,
            "postgres://app@db.lab:5432/shop?sslmode=require"
        );
        assert_eq!(c.password.as_deref(), Some("s3cr3t"));
        let none = split(&SecretString::from(
            "postgres://postgres@127.0.0.1/x".to_owned(),
        ));
        assert_eq!(none.password, None);
    }
}
