//! Child processes as streams: a tool's stdout read as a backup source (`pg_dump`, `tar`), or its stdin
//! written as a restore target (`pg_restore`, `tar -x`). A process that exits with an error fails the stream:
//! a dump that stops early is never stored as a short backup.

use std::io::{self, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A process's stdout; reading past its end checks that the process succeeded.
pub struct Output {
    program: &'static str,
    child: Child,
    stdout: ChildStdout,
    finished: bool,
}

/// Starts `command` with its stdout piped to the returned reader.
pub fn output(program: &'static str, mut command: Command) -> io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {program}: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    Ok(Output {
        program,
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

impl Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !self.finished {
            self.finished = true;
            check_exit(&mut self.child, self.program)?;
        }
        Ok(n)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process fed on its stdin: write into [`Input::stdin`], then [`Input::finish`] says whether it applied.
pub struct Input {
    program: &'static str,
    child: Child,
}

/// Starts `command` and returns it with the stdin to write into (drop the stdin to end the input).
pub fn input(program: &'static str, mut command: Command) -> io::Result<(Input, ChildStdin)> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {program}: {e}")))?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok((Input { program, child }, stdin))
}

impl Input {
    pub fn finish(mut self) -> io::Result<()> {
        check_exit(&mut self.child, self.program)
    }
}
