//! PostgreSQL as a backup source and restore target: `pg_dump --format=custom` streamed from its stdout,
//! `pg_restore` fed on its stdin. The password never appears on a command line: it goes in PGPASSWORD.

use std::io::{self, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use secrecy::{ExposeSecret, SecretString};

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

/// pg_dump's output as a stream; reading past its end checks that pg_dump succeeded.
pub struct Dump {
    child: Child,
    stdout: ChildStdout,
    finished: bool,
}

/// Starts `pg_dump --format=custom` of the database at `url`.
pub fn dump(url: &SecretString) -> io::Result<Dump> {
    let mut child = command("pg_dump", url)
        .args(["--format=custom", "--no-owner"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting pg_dump: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    Ok(Dump {
        child,
        stdout,
        finished: false,
    })
}

fn check_exit(child: &mut Child, program: &str) -> io::Result<()> {
    let status = child.wait()?;
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Err(io::Error::other(format!(
        "{program} failed ({status}): {}",
        stderr.trim()
    )))
}

impl Read for Dump {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !self.finished {
            self.finished = true;
            // A dump that stops early must fail the backup, not store a short one.
            check_exit(&mut self.child, "pg_dump")?;
        }
        Ok(n)
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `pg_restore` into the (existing, empty) database at a URL: write the dump into its stdin, then
/// [`Restore::finish`] says whether it applied.
pub struct Restore {
    child: Child,
}

/// Starts `pg_restore`; returns it and the stdin to write a custom-format dump into (drop it to end the dump).
pub fn start_restore(url: &SecretString) -> io::Result<(Restore, ChildStdin)> {
    let mut child = command("pg_restore", url)
        .args(["--no-owner", "--exit-on-error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting pg_restore: {e}")))?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok((Restore { child }, stdin))
}

impl Restore {
    pub fn finish(mut self) -> io::Result<()> {
        check_exit(&mut self.child, "pg_restore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
